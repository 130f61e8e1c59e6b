// Command kafkawait waits until a Kafka broker answers metadata requests and
// prints what it found. scripts/kafka.sh runs it after starting the broker:
// an open port is not enough, the broker must have joined its KRaft quorum.
//
//	kafkawait -brokers 127.0.0.1:19092 -sasl-brokers 127.0.0.1:19094 -timeout 90s
//
// With -sasl-brokers it also logs in there with SCRAM-SHA-512 and PLAIN as
// -user/-password, so a broken security setup fails the start, not a test
// much later. Exit status 1 means not ready before the timeout; the last
// error is printed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func main() {
	var (
		brokers     = flag.String("brokers", envOr("REEL_KAFKA_BROKERS", "127.0.0.1:19092"), "comma-separated seed brokers (PLAINTEXT)")
		saslBrokers = flag.String("sasl-brokers", "", "comma-separated SASL_PLAINTEXT brokers to check a login on (default: none)")
		user        = flag.String("user", "reel", "SASL user")
		password    = flag.String("password", "reel-secret", "SASL password")
		timeout     = flag.Duration("timeout", 90*time.Second, "how long to wait")
		once        = flag.Bool("once", false, "try once, do not wait (for status)")
	)
	flag.Parse()
	if *once {
		*timeout = 0
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), max(*timeout, 5*time.Second))
	defer cancel()

	info, err := waitFor(ctx, split(*brokers), nil, *once)
	if err != nil {
		fail(*brokers, start, err)
	}
	if *saslBrokers != "" {
		mechs := []sasl.Mechanism{
			scram.Auth{User: *user, Pass: *password}.AsSha512Mechanism(),
			plain.Auth{User: *user, Pass: *password}.AsMechanism(),
		}
		for _, m := range mechs {
			if _, err := waitFor(ctx, split(*saslBrokers), m, *once); err != nil {
				fail(*saslBrokers+" ("+m.Name()+")", start, err)
			}
		}
		info += fmt.Sprintf(", SASL %s (SCRAM-SHA-512, PLAIN) ok", *saslBrokers)
	}
	fmt.Printf("kafka ready after %.1fs: %s\n", time.Since(start).Seconds(), info)
}

func fail(what string, start time.Time, err error) {
	fmt.Fprintf(os.Stderr, "kafkawait: %s not ready after %.1fs: %v\n", what, time.Since(start).Seconds(), err)
	os.Exit(1)
}

// waitFor polls until a metadata request lists at least one broker and an
// active controller, then describes the cluster.
func waitFor(ctx context.Context, seeds []string, mech sasl.Mechanism, once bool) (string, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DialTimeout(2 * time.Second),
		kgo.RequestRetries(0),
		kgo.RetryTimeout(2 * time.Second),
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	var last error
	for {
		info, err := try(ctx, opts)
		if err == nil {
			return info, nil
		}
		last = err
		if once {
			return "", last
		}
		select {
		case <-ctx.Done():
			return "", last
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func try(ctx context.Context, opts []kgo.Opt) (string, error) {
	// A fresh client per attempt: a client that failed SASL or dialled a
	// half-started broker may keep stale connection state.
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return "", err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	md, err := adm.BrokerMetadata(actx)
	if err != nil {
		return "", err
	}
	if len(md.Brokers) == 0 {
		return "", errors.New("metadata lists no brokers yet")
	}
	if md.Controller < 0 {
		return "", errors.New("no active controller yet")
	}
	version := "unknown"
	if vs, err := adm.ApiVersions(actx); err == nil {
		for _, v := range vs.Sorted() {
			if v.Err == nil {
				version = v.VersionGuess()
				break
			}
		}
	}
	return fmt.Sprintf("%d broker(s) %s, controller %d, cluster %s, version guess %q",
		len(md.Brokers), strings.Join(hosts(md.Brokers), ","), md.Controller, md.Cluster, version), nil
}

func hosts(bs kadm.BrokerDetails) []string {
	out := make([]string, 0, len(bs))
	for _, b := range bs {
		out = append(out, fmt.Sprintf("%d@%s:%d", b.NodeID, b.Host, b.Port))
	}
	return out
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
