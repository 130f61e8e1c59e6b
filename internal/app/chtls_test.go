package app_test

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/reel-dev/reel/internal/app"
	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/internal/chproc"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/projectors/store"
)

// TestClickHouseTLSAndUsers runs the embedded ClickHouse with HTTPS and
// users, and connects the way Reel does from its config: the writer
// verifies the server against clickhouse.tls.caFile and authenticates
// with clickhouse.username and REEL_CLICKHOUSE_PASSWORD; a read-only query
// user reads but cannot write; a wrong password, a missing CA and plain
// HTTP are refused, with errors the classifier calls permanent where no
// retry helps.
func TestClickHouseTLSAndUsers(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := newCA(t)
	serverCert := leaf(t, caCert, caKey, "clickhouse", true)
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", caCert.Raw)
	certFile := writePEM(t, dir, "server.pem", "CERTIFICATE", serverCert.Certificate[0])
	keyDER, err := x509.MarshalPKCS8PrivateKey(serverCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writePEM(t, dir, "server-key.pem", "PRIVATE KEY", keyDER)
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte("reel w-secret write\nanalyst r-secret readonly=2\nstrict s-secret readonly\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := testenv.ClickHouseProcess(t, chproc.Options{TLSCert: certFile, TLSKey: keyFile, UsersFile: users})
	dsn := srv.DSN()
	if !strings.HasPrefix(dsn, "https://") {
		t.Fatalf("DSN %s", dsn)
	}
	ctx := context.Background()
	open := func(yaml string, env map[string]string) (clickhouse.Conn, error) {
		if env == nil {
			env = map[string]string{}
		}
		env["REEL_CLICKHOUSE_DSN"] = dsn
		return app.OpenClickHouse(ctx, parse(t, yaml, env))
	}
	tlsYAML := "  tls: {enabled: true, caFile: " + caFile + "}\n"

	writer, err := open("clickhouse:\n  username: reel\n"+tlsYAML, map[string]string{"REEL_CLICKHOUSE_PASSWORD": "w-secret"})
	if err != nil {
		t.Fatalf("writer over TLS: %v", err)
	}
	defer writer.Close()
	if err := store.EnsureSystemTables(ctx, writer); err != nil {
		t.Fatalf("writer DDL: %v", err)
	}
	if _, err := chclient.CheckServer(ctx, writer); err != nil {
		t.Fatalf("write settings: %v", err)
	}
	if err := store.SetGeneration(ctx, writer, mustProjection(t), 1, "live", "tls test"); err != nil {
		t.Fatalf("writer insert: %v", err)
	}

	reader, err := open("clickhouse:\n  username: analyst\n"+tlsYAML, map[string]string{"REEL_CLICKHOUSE_PASSWORD": "r-secret"})
	if err != nil {
		t.Fatalf("read-only user over TLS: %v", err)
	}
	defer reader.Close()
	gens, err := store.Generations(ctx, reader, mustProjection(t).Name)
	if err != nil || len(gens) != 1 {
		t.Fatalf("read-only user reads generations: %v %v", gens, err)
	}
	err = store.SetGeneration(ctx, reader, mustProjection(t), 2, "building", "must be refused")
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != 164 || chclient.Classify(err) != chclient.Permanent {
		t.Fatalf("read-only user's insert: %v; want READONLY, permanent", err)
	}

	// A readonly = 1 user cannot even connect: clickhouse-go's connection
	// check carries max_execution_time, which readonly = 1 forbids to set.
	_, err = open("clickhouse:\n  username: strict\n"+tlsYAML, map[string]string{"REEL_CLICKHOUSE_PASSWORD": "s-secret"})
	if code, _ := chclient.Code(err); code != 164 || chclient.Classify(err) != chclient.Permanent {
		t.Fatalf("readonly=1 user: %v; want READONLY, permanent", err)
	}

	_, err = open("clickhouse:\n  username: reel\n"+tlsYAML, map[string]string{"REEL_CLICKHOUSE_PASSWORD": "wrong"})
	if err == nil || chclient.Classify(err) != chclient.Permanent {
		t.Fatalf("wrong password: %v (class %v); want a permanent refusal", err, chclient.Classify(err))
	}
	if code, _ := chclient.Code(err); code != 516 {
		t.Fatalf("wrong password: code %d, want 516", code)
	}
	if _, err := open("clickhouse:\n  username: reel\n  tls: {enabled: true}\n", map[string]string{"REEL_CLICKHOUSE_PASSWORD": "w-secret"}); err == nil {
		t.Fatal("a server certificate from an unknown CA was accepted without caFile")
	}
	plain := strings.Replace(dsn, "https://", "http://", 1)
	if _, err := app.OpenClickHouse(ctx, parse(t, "clickhouse:\n  username: reel\n", map[string]string{"REEL_CLICKHOUSE_DSN": plain, "REEL_CLICKHOUSE_PASSWORD": "w-secret"})); err == nil {
		t.Fatal("plain HTTP reached the TLS listener")
	}
	// A DSN alone (chclient, as the CLI's -dsn): credentials in the URL.
	c, err := chclient.Open(ctx, strings.Replace(dsn, "https://", "https://analyst:r-secret@", 1)+"?skip_verify=true")
	if err != nil {
		t.Fatalf("DSN with credentials: %v", err)
	}
	c.Close()
}

func mustProjection(t *testing.T) *projection.Projection {
	t.Helper()
	return &projection.Projection{Name: "tlstest"}
}
