package schemas

import (
	"embed"
	"io/fs"
)

// demo is the demo domains' catalog (conference, shop), shipped as data in
// demo/ — .avsc files plus catalog.yaml, the same layout any team's
// catalog has — and embedded as the default of `reel dev`.
//
//go:embed demo
var demo embed.FS

// FS returns the embedded demo catalog (demo/ as its root).
func FS() fs.FS {
	sub, err := fs.Sub(demo, "demo")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	return sub
}

// Load returns the embedded demo catalog.
func Load() (*Catalog, error) { return loadFS(FS(), "embedded demo catalog") }
