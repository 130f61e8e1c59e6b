// Package registry lists every projection Reel ships, in one place.
//
//	for _, p := range registry.All() { fmt.Println(p.Name) }
package registry

import (
	"fmt"

	"github.com/reel-dev/reel/examples/demo/projectors/eventlog"
	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/examples/demo/projectors/shop"
	"github.com/reel-dev/reel/projectors/projection"
)

// All returns fresh values of every projection.
func All() []*projection.Projection {
	return []*projection.Projection{
		seats.Availability(),
		shop.Orders(),
		shop.Saga(),
		shop.Sales(),
		eventlog.Log(seats.Topic, shop.Topic),
	}
}

// Get returns the projection named name.
func Get(name string) (*projection.Projection, error) {
	var names []string
	for _, p := range All() {
		if p.Name == name {
			return p, nil
		}
		names = append(names, p.Name)
	}
	return nil, fmt.Errorf("no projection %q (have %v)", name, names)
}
