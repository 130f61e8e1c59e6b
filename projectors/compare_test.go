package projectors_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/projectors/store"
)

// tableCheck is the outcome of comparing one table with the fold.
type tableCheck struct {
	table      string
	rows       int // rows read from ClickHouse
	want       int // rows the fold expects
	lost       int // expected rows (or units of effect) missing
	duplicated int // rows present more often than the events justify
	wrong      int // rows present once but with other values
	samples    []string
}

func (c *tableCheck) miss(format string, args ...any) {
	c.lost++
	c.sample("lost: "+format, args...)
}

func (c *tableCheck) dup(format string, args ...any) {
	c.duplicated++
	c.sample("duplicated: "+format, args...)
}

func (c *tableCheck) bad(format string, args ...any) {
	c.wrong++
	c.sample("wrong: "+format, args...)
}

func (c *tableCheck) sample(format string, args ...any) {
	if len(c.samples) < 8 {
		c.samples = append(c.samples, fmt.Sprintf(format, args...))
	}
}

// compareAll compares every table (and view) of the projections (orders,
// order_saga, sales, seats, event_log) with the fold, logs one line per table and fails the
// test on any lost, duplicated or wrong row.
func compareAll(t *testing.T, conn driver.Conn, f *fold, gen int, projections ...string) []*tableCheck {
	t.Helper()
	ctx := context.Background()
	has := map[string]bool{}
	for _, p := range projections {
		has[p] = true
	}
	var checks []*tableCheck
	if has["orders"] {
		checks = append(checks, checkOrders(t, ctx, conn, f),
			checkHistory(t, ctx, conn, "orders_current_history", "order_id", func(id string) (int, bool) {
				o, ok := f.orders[id]
				if !ok {
					return 0, false
				}
				return o.versions, true
			}, len(f.orders)))
	}
	if has["order_saga"] {
		checks = append(checks, checkSagas(t, ctx, conn, f))
	}
	if has["sales"] {
		checks = append(checks, checkSalesLines(t, ctx, conn, f), checkPending(t, ctx, conn, f), checkDaily(t, ctx, conn, f))
	}
	if has["seats"] {
		checks = append(checks, checkConfs(t, ctx, conn, f),
			checkHistory(t, ctx, conn, "seat_availability_history", "conference_id", func(id string) (int, bool) {
				c, ok := f.confs[id]
				if !ok {
					return 0, false
				}
				return c.versions, true
			}, len(f.confs)))
	}
	if has["event_log"] {
		checks = append(checks, checkEventLog(t, ctx, conn, f))
	}
	checks = append(checks, checkStateDuplicates(t, ctx, conn, gen, has))
	for _, p := range projections {
		c := &tableCheck{table: p + "_parked"}
		var n uint64
		must(t, conn.QueryRow(ctx, "SELECT count() FROM "+p+"_parked").Scan(&n))
		c.rows = int(n)
		if n > 0 {
			c.bad("%d parked events; the stream has no poison events", n)
		}
		checks = append(checks, c)
	}
	failed := false
	for _, c := range checks {
		t.Logf("%-28s rows %8d (fold %8d)  lost %d  duplicated %d  wrong %d", c.table, c.rows, c.want, c.lost, c.duplicated, c.wrong)
		if c.lost+c.duplicated+c.wrong > 0 {
			failed = true
			for _, s := range c.samples {
				t.Logf("    %s", s)
			}
		}
	}
	if failed {
		t.Errorf("tables differ from the fold of the %d produced events", f.events)
	}
	return checks
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func query(t *testing.T, ctx context.Context, conn driver.Conn, q string, each func(scan func(...any) error) error) {
	t.Helper()
	rows, err := conn.Query(ctx, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows.Scan); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func checkOrders(t *testing.T, ctx context.Context, conn driver.Conn, f *fold) *tableCheck {
	c := &tableCheck{table: "orders_current", want: len(f.orders)}
	seen := map[string]int{}
	query(t, ctx, conn, `SELECT order_id, customer_id, currency, channel, status, item_count, lines_added, total_cents, paid_cents,
cancel_reason, placed_at, updated_at FROM orders_current`, func(scan func(...any) error) error {
		var id, cust, cur, ch, st, reason string
		var items, lines uint32
		var total, paid int64
		var placed, updated time.Time
		if err := scan(&id, &cust, &cur, &ch, &st, &items, &lines, &total, &paid, &reason, &placed, &updated); err != nil {
			return err
		}
		c.rows++
		seen[id]++
		o, ok := f.orders[id]
		switch {
		case !ok:
			c.bad("order %s not produced", id)
		case seen[id] > 1:
			c.dup("order %s has %d rows in the FINAL view", id, seen[id])
		case o.customer != cust || o.currency != cur || o.channel != ch || o.itemCount != items || !o.placedAt.Equal(placed):
			c.bad("order %s header: got %s/%s/%s/%d/%s", id, cust, cur, ch, items, placed)
		case o.linesAdded > lines || o.total > total || o.paid > paid || o.status != st && o.updatedAt.After(updated):
			// Fewer lines or cents than the fold: an event's effect is missing.
			c.miss("order %s: lines %d/%d total %d/%d paid %d/%d status %s/%s (got/want)", id, lines, o.linesAdded, total, o.total, paid, o.paid, st, o.status)
		case o.linesAdded < lines || o.total < total || o.paid < paid:
			c.dup("order %s: lines %d/%d total %d/%d paid %d/%d (got/want)", id, lines, o.linesAdded, total, o.total, paid, o.paid)
		case o.status != st || o.cancelReason != reason || !o.updatedAt.Equal(updated):
			c.bad("order %s: status %s/%s reason %q/%q updated %s/%s (got/want)", id, st, o.status, reason, o.cancelReason, updated, o.updatedAt)
		}
		return nil
	})
	for id := range f.orders {
		if seen[id] == 0 {
			c.miss("order %s has no row", id)
		}
	}
	return c
}

// checkHistory compares the number of history rows per aggregate (one per
// state-changing event) with the fold; each must carry a distinct offset.
func checkHistory(t *testing.T, ctx context.Context, conn driver.Conn, view, key string, want func(string) (int, bool), aggregates int) *tableCheck {
	c := &tableCheck{table: view}
	got := map[string]bool{}
	query(t, ctx, conn, fmt.Sprintf("SELECT %s, count(), uniqExact(_partition, _offset) FROM %s GROUP BY %s", key, view, key), func(scan func(...any) error) error {
		var id string
		var n, distinct uint64
		if err := scan(&id, &n, &distinct); err != nil {
			return err
		}
		c.rows += int(n)
		got[id] = true
		w, ok := want(id)
		switch {
		case !ok:
			c.bad("%s %s not produced", key, id)
		case n != distinct:
			c.dup("%s %s: %d rows for %d offsets", key, id, n, distinct)
		case int(n) < w:
			c.miss("%s %s: %d versions, fold says %d", key, id, n, w)
		case int(n) > w:
			c.dup("%s %s: %d versions, fold says %d", key, id, n, w)
		}
		if ok {
			c.want += w
		}
		return nil
	})
	if len(got) < aggregates {
		c.miss("%d of %d aggregates have no history", aggregates-len(got), aggregates)
	}
	return c
}

func checkSagas(t *testing.T, ctx context.Context, conn driver.Conn, f *fold) *tableCheck {
	c := &tableCheck{table: "order_saga", want: len(f.sagas)}
	seen := map[string]int{}
	query(t, ctx, conn, "SELECT order_id, stock, payment, stock_released, outcome, steps, started_at, finished_at FROM order_saga", func(scan func(...any) error) error {
		var id, stock, pay, outcome string
		var released bool
		var steps []string
		var started, finished time.Time
		if err := scan(&id, &stock, &pay, &released, &outcome, &steps, &started, &finished); err != nil {
			return err
		}
		c.rows++
		seen[id]++
		s, ok := f.sagas[id]
		switch {
		case !ok:
			c.bad("saga %s not produced", id)
		case seen[id] > 1:
			c.dup("saga %s has %d rows in the FINAL view", id, seen[id])
		case len(steps) < len(s.steps):
			c.miss("saga %s: steps %v, fold %v", id, steps, s.steps)
		case len(steps) > len(s.steps):
			c.dup("saga %s: steps %v, fold %v", id, steps, s.steps)
		case !slicesEqual(steps, s.steps) || stock != s.stock || pay != s.payment || released != s.released || outcome != s.outcome ||
			!started.Equal(s.started) || !sameTime(finished, s.finished):
			c.bad("saga %s: %s/%s/%v/%s %v %s..%s, fold %s/%s/%v/%s %v %s..%s", id, stock, pay, released, outcome, steps, started, finished,
				s.stock, s.payment, s.released, s.outcome, s.steps, s.started, s.finished)
		}
		return nil
	})
	for id := range f.sagas {
		if seen[id] == 0 {
			c.miss("saga %s has no row", id)
		}
	}
	return c
}

func checkSalesLines(t *testing.T, ctx context.Context, conn driver.Conn, f *fold) *tableCheck {
	c := &tableCheck{table: "sales_lines", want: f.nLines}
	got := map[saleLine]int{}
	query(t, ctx, conn, "SELECT toString(day), product_id, order_id, quantity, revenue_cents, currency FROM sales_lines", func(scan func(...any) error) error {
		var l saleLine
		if err := scan(&l.day, &l.product, &l.order, &l.quantity, &l.rev, &l.currency); err != nil {
			return err
		}
		c.rows++
		got[l]++
		return nil
	})
	for l, n := range f.lines {
		if got[l] < n {
			for range n - got[l] {
				c.miss("%+v", l)
			}
		}
	}
	for l, n := range got {
		w := f.lines[l]
		if n > w {
			if w == 0 {
				c.bad("line not in the fold: %+v", l)
				continue
			}
			for range n - w {
				c.dup("%+v", l)
			}
		}
	}
	return c
}

func checkPending(t *testing.T, ctx context.Context, conn driver.Conn, f *fold) *tableCheck {
	c := &tableCheck{table: "sales_pending_orders", want: len(f.pending)}
	seen := map[string]int{}
	query(t, ctx, conn, "SELECT order_id, currency, products, quantities, prices_cents, closed FROM sales_pending_orders", func(scan func(...any) error) error {
		var id, cur string
		var prods []string
		var qty, price []int64
		var closed bool
		if err := scan(&id, &cur, &prods, &qty, &price, &closed); err != nil {
			return err
		}
		c.rows++
		seen[id]++
		p, ok := f.pending[id]
		switch {
		case !ok:
			c.bad("order %s not produced", id)
		case seen[id] > 1:
			c.dup("order %s has %d rows in the FINAL view", id, seen[id])
		case len(prods) < len(p.products):
			c.miss("order %s: products %v, fold %v", id, prods, p.products)
		case len(prods) > len(p.products):
			c.dup("order %s: products %v, fold %v", id, prods, p.products)
		case cur != p.currency || closed != p.closed || !slicesEqual(prods, p.products) || !slicesEqual(qty, p.quantities) || !slicesEqual(price, p.price):
			c.bad("order %s: %s %v %v %v %v, fold %s %v %v %v %v", id, cur, prods, qty, price, closed, p.currency, p.products, p.quantities, p.price, p.closed)
		}
		return nil
	})
	for id := range f.pending {
		if seen[id] == 0 {
			c.miss("order %s has no row", id)
		}
	}
	return c
}

func checkDaily(t *testing.T, ctx context.Context, conn driver.Conn, f *fold) *tableCheck {
	c := &tableCheck{table: "daily_sales", want: len(f.daily)}
	seen := map[string]bool{}
	query(t, ctx, conn, "SELECT toString(day), product_id, currency, units, revenue_cents, orders FROM daily_sales", func(scan func(...any) error) error {
		var day, prod, cur string
		var units, rev int64
		var orders uint64
		if err := scan(&day, &prod, &cur, &units, &rev, &orders); err != nil {
			return err
		}
		c.rows++
		k := day + "/" + prod + "/" + cur
		seen[k] = true
		d, ok := f.daily[k]
		switch {
		case !ok:
			c.bad("%s not in the fold", k)
		case units < d.units || rev < d.revenue || int(orders) < len(d.orders):
			c.miss("%s: units %d/%d revenue %d/%d orders %d/%d (got/want)", k, units, d.units, rev, d.revenue, orders, len(d.orders))
		case units > d.units || rev > d.revenue || int(orders) > len(d.orders):
			c.dup("%s: units %d/%d revenue %d/%d orders %d/%d (got/want)", k, units, d.units, rev, d.revenue, orders, len(d.orders))
		}
		return nil
	})
	for k := range f.daily {
		if !seen[k] {
			c.miss("%s has no row", k)
		}
	}
	return c
}

func checkConfs(t *testing.T, ctx context.Context, conn driver.Conn, f *fold) *tableCheck {
	c := &tableCheck{table: "seat_availability", want: len(f.confs)}
	seen := map[string]int{}
	query(t, ctx, conn, "SELECT conference_id, name, starts_at, seats_total, seats_reserved, reservations, cancellations, updated_at FROM seat_availability", func(scan func(...any) error) error {
		var id, name string
		var starts, updated time.Time
		var total, reserved map[string]int64
		var res, canc uint32
		if err := scan(&id, &name, &starts, &total, &reserved, &res, &canc, &updated); err != nil {
			return err
		}
		c.rows++
		seen[id]++
		w, ok := f.confs[id]
		switch {
		case !ok:
			c.bad("conference %s not produced", id)
		case seen[id] > 1:
			c.dup("conference %s has %d rows in the FINAL view", id, seen[id])
		case res+canc < w.reservations+w.cancellations:
			c.miss("conference %s: %d reservations %d cancellations, fold %d %d", id, res, canc, w.reservations, w.cancellations)
		case res+canc > w.reservations+w.cancellations:
			c.dup("conference %s: %d reservations %d cancellations, fold %d %d", id, res, canc, w.reservations, w.cancellations)
		case res != w.reservations || canc != w.cancellations || name != w.name || !starts.Equal(w.startsAt) || !updated.Equal(w.updatedAt) ||
			!reflect.DeepEqual(total, w.total) || !reflect.DeepEqual(reserved, nonZeroKeys(reserved, w.reserved)):
			c.bad("conference %s: %s %s %v %v %d %d %s, fold %s %s %v %v %d %d %s", id, name, starts, total, reserved, res, canc, updated,
				w.name, w.startsAt, w.total, w.reserved, w.reservations, w.cancellations, w.updatedAt)
		}
		return nil
	})
	for id := range f.confs {
		if seen[id] == 0 {
			c.miss("conference %s has no row", id)
		}
	}
	return c
}

// nonZeroKeys returns want restricted to keys present in got or non-zero,
// so a seat type that was never reserved compares equal to a missing key.
func nonZeroKeys(got, want map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range want {
		if _, ok := got[k]; ok || v != 0 {
			out[k] = v
		}
	}
	return out
}

func checkEventLog(t *testing.T, ctx context.Context, conn driver.Conn, f *fold) *tableCheck {
	c := &tableCheck{table: "event_log", want: len(f.log)}
	seen := map[string]int{}
	query(t, ctx, conn, "SELECT event_id, event_type, aggregate_id, occurred_at, _topic, _partition, _offset FROM event_log", func(scan func(...any) error) error {
		var id, typ, agg, topic string
		var occurred time.Time
		var part uint32
		var off uint64
		if err := scan(&id, &typ, &agg, &occurred, &topic, &part, &off); err != nil {
			return err
		}
		c.rows++
		seen[id]++
		p, ok := f.log[id]
		switch {
		case !ok:
			c.bad("event %s not produced", id)
		case seen[id] > 1:
			c.dup("event %s (%s/%d@%d) %d times", id, topic, part, off, seen[id])
		case p.topic != topic || p.partition != int32(part) || p.offset != int64(off) || p.ev.Type != typ || p.ev.AggregateID != agg || !p.ev.OccurredAt.Equal(occurred):
			c.bad("event %s at %s/%d@%d, produced at %s/%d@%d", id, topic, part, off, p.topic, p.partition, p.offset)
		}
		return nil
	})
	for id, p := range f.log {
		if seen[id] == 0 {
			c.miss("event %s (%s/%d@%d)", id, p.topic, p.partition, p.offset)
		}
	}
	return c
}

// checkStateDuplicates looks under the FINAL views: a State table must hold
// one row per (aggregate, offset) — more means an insert was repeated
// (harmless to readers, but a sign the recovery is not exact). Parts may
// have merged duplicates away, so this can only find, never excuse.
func checkStateDuplicates(t *testing.T, ctx context.Context, conn driver.Conn, gen int, has map[string]bool) *tableCheck {
	c := &tableCheck{table: "state tables (raw)"}
	for _, tb := range []struct{ proj, table, key string }{
		{"orders", "orders_current", "order_id"},
		{"order_saga", "order_saga", "order_id"},
		{"sales", "sales_pending_orders", "order_id"},
		{"seats", "seat_availability", "conference_id"},
	} {
		if !has[tb.proj] {
			continue
		}
		phys := store.PhysName(tb.proj, tb.table, gen)
		var rows, distinct uint64
		must(t, conn.QueryRow(ctx, fmt.Sprintf("SELECT count(), uniqExact(%s, _partition, _offset) FROM %s", tb.key, phys)).Scan(&rows, &distinct))
		dups := rows - distinct
		c.rows += int(rows)
		if dups > 0 {
			c.duplicated += int(dups)
			c.sample("%s: %d repeated (aggregate, offset) rows", phys, dups)
		}
	}
	return c
}

// slicesEqual treats nil and empty alike (ClickHouse returns empty arrays).
func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sameTime compares a stored time with the fold's; an unset time is
// stored as the Unix epoch.
func sameTime(got, want time.Time) bool {
	if want.IsZero() {
		want = time.Unix(0, 0)
	}
	return got.Equal(want)
}

func sumChecks(cs []*tableCheck) (rows, lost, dup, wrong int) {
	for _, c := range cs {
		rows += c.rows
		lost += c.lost
		dup += c.duplicated
		wrong += c.wrong
	}
	return
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var _ = strings.Join
