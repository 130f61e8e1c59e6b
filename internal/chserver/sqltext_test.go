package chserver

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestInsertParts(t *testing.T) {
	for _, tc := range []struct {
		q, stmt, format, inline string
		ok                      bool
	}{
		{"INSERT INTO `db`.`t` (`a`, `b`) FORMAT Native", "INSERT INTO `db`.`t` (`a`, `b`)", "Native", "", true},
		{"insert into t format TabSeparated\n1\tx\n", "insert into t", "TabSeparated", "1\tx\n", true},
		{"INSERT INTO t SETTINGS async_insert=1 FORMAT Native", "INSERT INTO t SETTINGS async_insert=1", "Native", "", true},
		{"INSERT INTO t VALUES (1, 'FORMAT x'), (2, 'y')", "INSERT INTO t", "Values", " (1, 'FORMAT x'), (2, 'y')", true},
		{"/* c */ INSERT INTO `values` (format) VALUES (1)", "/* c */ INSERT INTO `values` (format)", "Values", " (1)", true},
		{"INSERT INTO t SELECT * FROM u FORMAT Native", "", "", "", false},
		{"INSERT INTO t WITH 1 AS x SELECT x", "", "", "", false},
		{"SELECT 1 FORMAT Native", "", "", "", false},
	} {
		stmt, format, inline, ok := insertParts(tc.q)
		if stmt != tc.stmt || format != tc.format || inline != tc.inline || ok != tc.ok {
			t.Errorf("insertParts(%q) = %q, %q, %q, %v", tc.q, stmt, format, inline, ok)
		}
	}
}

func TestFormatClause(t *testing.T) {
	for q, want := range map[string]string{
		"SELECT 1":                    "",
		"SELECT 1 FORMAT JSONEachRow": "JSONEachRow",
		"SELECT 1 format CSV SETTINGS max_threads=1":  "CSV",
		"SELECT format FROM t":                        "",
		"SELECT 'FORMAT JSON' FROM t -- FORMAT CSV\n": "",
		"INSERT INTO t FORMAT Native":                 "",
	} {
		if got := formatClause(q); got != want {
			t.Errorf("formatClause(%q) = %q, want %q", q, got, want)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte("reel chdb frames "), 100_000)
	for _, m := range []string{"LZ4", "ZSTD", "NONE"} {
		var buf bytes.Buffer
		fw, err := newFrameWriter(&buf, m)
		if err != nil {
			t.Fatal(err)
		}
		for chunk := range slices.Chunk(data, 300_000) {
			if _, err := fw.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
		got, err := io.ReadAll(newFrameReader(&buf))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %d bytes back, %v", m, len(got), err)
		}
	}
	// A corrupted frame is an error, not garbage.
	var buf bytes.Buffer
	fw, _ := newFrameWriter(&buf, "LZ4")
	fw.Write(data[:1000])
	b := buf.Bytes()
	b[len(b)-1] ^= 0xff
	if _, err := io.ReadAll(newFrameReader(bytes.NewReader(b))); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("corrupted frame: %v", err)
	}
}
