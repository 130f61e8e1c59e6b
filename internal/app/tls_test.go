package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/internal/app"
	"github.com/reel-dev/reel/internal/testenv"
)

// TestKafkaTLS: kafka.tls in the config makes the client verify the broker
// against the configured CA, and present a client certificate the broker
// requires (mutual TLS). The broker is kfake with TLS listeners.
func TestKafkaTLS(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := newCA(t)
	serverCert := leaf(t, caCert, caKey, "broker", true)
	clientCert := leaf(t, caCert, caKey, "reel", false)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	cluster := testenv.Fake(t, kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}))
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", caCert.Raw)
	certFile := writePEM(t, dir, "client.pem", "CERTIFICATE", clientCert.Certificate[0])
	keyDER, err := x509.MarshalPKCS8PrivateKey(clientCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writePEM(t, dir, "client-key.pem", "PRIVATE KEY", keyDER)
	env := map[string]string{"REEL_KAFKA_BROKERS": strings.Join(cluster.ListenAddrs(), ",")}

	reach := func(yaml string) error {
		c := parse(t, yaml, env)
		opts, err := app.KafkaOpts(c)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(append(opts, kgo.RetryTimeout(2*time.Second), kgo.RequestRetries(1))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = kadm.NewClient(cl).ListBrokers(ctx)
		return err
	}
	full := "kafka:\n  tls: {enabled: true, caFile: " + caFile + ", certFile: " + certFile + ", keyFile: " + keyFile + "}\n"
	if err := reach(full); err != nil {
		t.Fatalf("mutual TLS with the configured CA and client certificate: %v", err)
	}
	if err := reach("kafka:\n  tls: {enabled: true, certFile: " + certFile + ", keyFile: " + keyFile + "}\n"); err == nil {
		t.Fatal("a broker certificate from an unknown CA was accepted without caFile")
	}
	if err := reach("kafka:\n  tls: {enabled: true, caFile: " + caFile + "}\n"); err == nil {
		t.Fatal("the broker requires a client certificate, yet a client without one got through")
	}
	if err := reach("kafka:\n  brokers: []\n"); err == nil {
		t.Fatal("plaintext reached a TLS listener")
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "reel test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func leaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
