package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// resetKafka gives a test an empty real Kafka: every non-internal topic and
// every consumer group is deleted, as a fresh kfake cluster would be. Tests
// that share the one real broker therefore never see each other's events;
// scripts/test.sh runs test packages one at a time (-p 1) for this.
func resetKafka(t testing.TB, brokers []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("testenv: kafka client: %v", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("testenv: list groups: %v", err)
	}
	if names := groups.Groups(); len(names) > 0 {
		if _, err := adm.DeleteGroups(ctx, names...); err != nil {
			t.Logf("testenv: delete groups: %v", err)
		}
	}
	for {
		topics, err := adm.ListTopics(ctx)
		if err != nil {
			t.Fatalf("testenv: list topics: %v", err)
		}
		var names []string
		for _, name := range topics.Names() {
			if !strings.HasPrefix(name, "__") {
				names = append(names, name)
			}
		}
		if len(names) == 0 {
			return
		}
		if _, err := adm.DeleteTopics(ctx, names...); err != nil {
			t.Logf("testenv: delete topics: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("testenv: topics %v still present after deletion", names)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
