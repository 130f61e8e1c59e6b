package cli

import (
	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/registry"
)

// demoProgram is the CLI with the demo's Go projections and bindings, as
// cmd/reel builds it (without its producers and queries).
func demoProgram() *program {
	return newProgram(WithProjections(registry.All()...), WithBindings(events.Bindings()...), WithCatalog(events.FS()))
}
