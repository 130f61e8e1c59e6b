package cli

import "testing"

func TestParsePositions(t *testing.T) {
	got, err := parsePositions([]string{"shop.orders/3@1742", "shop.orders/3@10", "conference.seats/0@0"})
	if err != nil {
		t.Fatal(err)
	}
	if got["shop.orders"][3] != 1742 || got["conference.seats"][0] != 0 || len(got) != 2 {
		t.Fatalf("got %v", got)
	}
	for _, bad := range []string{"shop.orders@3", "shop.orders/x@1", "/1@2", "t/1@-3", "t/1"} {
		if _, err := parsePositions([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
