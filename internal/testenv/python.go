package testenv

import (
	"os"
	"testing"
)

// Python returns the interpreter of the cross-language producers' virtualenv
// (REEL_PYTHON, set by scripts/test.sh from `bash scripts/pyenv.sh install`:
// confluent-kafka with its Avro serializer, pinned). With REEL_INTEGRATION=1
// and no REEL_PYTHON the test fails; otherwise it is skipped.
func Python(t testing.TB) string {
	t.Helper()
	py := os.Getenv("REEL_PYTHON")
	if py == "" {
		if Integration() {
			t.Fatalf("testenv: REEL_INTEGRATION=1 but REEL_PYTHON is not set; run the suite through scripts/test.sh (it runs scripts/pyenv.sh)")
		}
		t.Skip("testenv: REEL_PYTHON is not set (eval \"$(bash scripts/pyenv.sh install)\" and export it); set REEL_INTEGRATION=1 to make this a failure")
	}
	if fi, err := os.Stat(py); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("testenv: REEL_PYTHON=%s is not an executable (bash scripts/pyenv.sh install creates it)", py)
	}
	return py
}
