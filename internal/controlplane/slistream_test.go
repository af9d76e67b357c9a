package controlplane_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/engine"
	slistore "fermion.dev/fermion/internal/fleet"
	"fermion.dev/fermion/internal/sliingest"
)

// TestSLIStreamHasOneOwner: the raw SLI stream (v1.StreamSLIs) is created and kept in
// shape by the agents' receive path (internal/sliingest) alone; the fleet store only
// binds to it. Whichever side starts first, and whatever an earlier server left, the
// stream ends with the owner's settings.
func TestSLIStreamHasOneOwner(t *testing.T) {
	owner := sliingest.StreamConfig(1, sliingest.DefaultMaxBytes)
	openIngest := func(ctx context.Context, js jetstream.JetStream) error {
		_, err := sliingest.Open(ctx, sliingest.Config{JetStream: js, Versions: func(string) []sliingest.VersionRef { return nil }})
		return err
	}
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, ctx context.Context, js jetstream.JetStream)
	}{
		{"store first", func(t *testing.T, ctx context.Context, js jetstream.JetStream) {
			bound := make(chan error, 1)
			go func() { bound <- slistore.OpenStreams(ctx, js, 1) }() // waits for the owner
			if err := openIngest(ctx, js); err != nil {
				t.Fatal(err)
			}
			if err := <-bound; err != nil {
				t.Fatal(err)
			}
		}},
		{"owner first", func(t *testing.T, ctx context.Context, js jetstream.JetStream) {
			if err := openIngest(ctx, js); err != nil {
				t.Fatal(err)
			}
			if err := slistore.OpenStreams(ctx, js, 1); err != nil {
				t.Fatal(err)
			}
		}},
		{"left with other bounds", func(t *testing.T, ctx context.Context, js jetstream.JetStream) {
			// As an older server (or a hand) made it: smaller, shorter, other dedupe.
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: v1.StreamSLIs, Subjects: []string{v1.SubjectSLIStreamAll},
				Storage: jetstream.FileStorage, MaxAge: time.Hour, MaxBytes: 1 << 20, Duplicates: 10 * time.Second}); err != nil {
				t.Fatal(err)
			}
			if err := slistore.OpenStreams(ctx, js, 1); err != nil {
				t.Fatal(err)
			}
			if err := openIngest(ctx, js); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			eng, err := engine.Start(ctx, engine.Config{DataDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(eng.Close)
			js := eng.JetStream()
			tt.setup(t, ctx, js)
			st, err := js.Stream(ctx, v1.StreamSLIs)
			if err != nil {
				t.Fatal(err)
			}
			got := st.CachedInfo().Config
			if !slices.Equal(got.Subjects, owner.Subjects) || got.Storage != owner.Storage || got.MaxAge != owner.MaxAge ||
				got.MaxBytes != owner.MaxBytes || got.Discard != owner.Discard || got.Duplicates != owner.Duplicates || got.Replicas != 1 {
				t.Fatalf("stream config %+v, want the owner's %+v", got, owner)
			}
		})
	}
	t.Run("store alone", func(t *testing.T) {
		eng, err := engine.Start(context.Background(), engine.Config{DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(eng.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err = slistore.OpenStreams(ctx, eng.JetStream(), 1)
		if err == nil || !strings.Contains(err.Error(), v1.StreamSLIs) {
			t.Fatalf("error %v, want one naming %s", err, v1.StreamSLIs)
		}
		if _, err := eng.JetStream().Stream(context.Background(), v1.StreamSLIs); err == nil {
			t.Fatal("the store created the raw stream")
		}
	})
}
