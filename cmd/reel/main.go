// Command reel is the stock Reel binary: the engine's CLI (package cli)
// with the demo compiled in — its Go projections, its typed payloads, its
// services for `reel dev` and `reel produce`, and the load test.
//
//	reel dev                   # everything embedded: produce, project, query
//	reel schemas check         # FULL_TRANSITIVE compatibility gate
//	reel produce shop          # run a demo service
//	reel project -config reel.yaml
//
// A team builds its own binary the same way, with its own projections
// (docs/library.md, examples/go-projection).
package main

import "github.com/reel-dev/reel/cli"

func main() {
	cli.Main(demo()...)
}
