// Command healthcheck is the container health probe of the Reel image for
// docker compose: the image is distroless (no shell, curl or wget), and
// Kubernetes probes over HTTP on its own.
//
//	healthcheck http://127.0.0.1:9464/readyz   # HTTP 2xx → exit 0
//	healthcheck tcp kafka:9092                 # a TCP connection → exit 0
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	if err := check(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

func check(args []string) error {
	const timeout = 3 * time.Second
	switch {
	case len(args) == 1:
		c := http.Client{Timeout: timeout}
		resp, err := c.Get(args[0])
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s: %s", args[0], resp.Status)
		}
		return nil
	case len(args) == 2 && args[0] == "tcp":
		conn, err := net.DialTimeout("tcp", args[1], timeout)
		if err != nil {
			return err
		}
		return conn.Close()
	default:
		return fmt.Errorf("usage: healthcheck URL | healthcheck tcp HOST:PORT")
	}
}
