package events

import (
	"embed"
	"io/fs"

	"github.com/reel-dev/reel/schemas"
)

// catalog is the demo domains' catalog (conference, shop), shipped as
// data in catalog/ and embedded for the stock binary (cli.WithCatalog).
//
//go:embed catalog
var catalog embed.FS

// FS returns the demo catalog (catalog/ as its root).
func FS() fs.FS {
	sub, err := fs.Sub(catalog, "catalog")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	return sub
}

// Load returns the demo catalog.
func Load() (*schemas.Catalog, error) { return schemas.LoadNamedFS(FS(), "embedded demo catalog") }
