package projectors

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Forget drops one projection's series and keeps the others'.
func TestMetricsForget(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.events.WithLabelValues("orders").Add(3)
	m.events.WithLabelValues("order_saga").Add(2)
	m.position.WithLabelValues("orders", "shop.orders", "0").Set(7)
	m.Forget("orders")
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string][]string{}
	for _, f := range fams {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "projection" {
					series[f.GetName()] = append(series[f.GetName()], l.GetValue())
				}
			}
		}
	}
	if got := series["reel_projector_events_total"]; len(got) != 1 || got[0] != "order_saga" {
		t.Fatalf("event series after Forget(orders): %v, want order_saga's only", got)
	}
	if got := series["reel_projector_applied_offset"]; len(got) != 0 {
		t.Fatalf("position series of a forgotten projection: %v", got)
	}
}
