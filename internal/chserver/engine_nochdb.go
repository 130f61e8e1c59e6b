//go:build !chdb

package chserver

import "errors"

func openEngine(string, string) (engineConn, error) {
	return nil, errors.New("chserver: built without the chDB engine; build with -tags chdb (bash scripts/chdb.sh install)")
}

// EngineVersion is empty without the chdb build tag.
func EngineVersion() string { return "" }
