package sli

import (
	"fmt"
	"strings"
	"testing"
)

func item(i, size int) []byte {
	b := []byte(fmt.Sprintf("%d:", i))
	for len(b) < size {
		b = append(b, '.')
	}
	return b
}

func contents(q *Buffer) string {
	var parts []string
	for _, b := range q.Oldest(q.Len()) {
		parts = append(parts, strings.TrimRight(string(b), "."))
	}
	return strings.Join(parts, " ")
}

func TestBuffer(t *testing.T) {
	tests := []struct {
		name               string
		maxBytes, maxCount int
		sizes              []int
		want               string
		dropped            uint64
	}{
		{"within bounds keeps order", 100, 10, []int{10, 10, 10}, "0: 1: 2:", 0},
		{"count bound drops oldest", 1000, 2, []int{10, 10, 10, 10}, "2: 3:", 2},
		{"byte bound drops oldest", 25, 10, []int{10, 10, 10}, "1: 2:", 1},
		{"a large item drops several", 30, 10, []int{10, 10, 10, 25}, "3:", 3},
		{"ring wraps past its first allocation", 1 << 20, 20, make([]int, 50), "30: 31: 32: 33: 34: 35: 36: 37: 38: 39: 40: 41: 42: 43: 44: 45: 46: 47: 48: 49:", 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := NewBuffer(tt.maxBytes, tt.maxCount)
			if err != nil {
				t.Fatal(err)
			}
			for i, size := range tt.sizes {
				if _, err := q.Push(item(i, size)); err != nil {
					t.Fatal(err)
				}
				if q.Bytes() > tt.maxBytes || q.Len() > tt.maxCount {
					t.Fatalf("after push %d: %d bytes, %d items, over the bounds", i, q.Bytes(), q.Len())
				}
			}
			if got := contents(q); got != tt.want {
				t.Fatalf("contents %q, want %q", got, tt.want)
			}
			if q.Dropped() != tt.dropped {
				t.Fatalf("dropped %d, want %d", q.Dropped(), tt.dropped)
			}
		})
	}
}

func TestBufferBackfill(t *testing.T) {
	q, _ := NewBuffer(1<<20, 100)
	for i := 0; i < 10; i++ {
		q.Push(item(i, 0))
	}
	var sent []string
	for q.Len() > 0 {
		batch := q.Oldest(4)
		for _, b := range batch {
			sent = append(sent, string(b))
		}
		q.Ack(len(batch))
	}
	if got := strings.Join(sent, " "); got != "0: 1: 2: 3: 4: 5: 6: 7: 8: 9:" {
		t.Fatalf("backfilled %q", got)
	}
	if q.Bytes() != 0 {
		t.Fatalf("%d bytes left after acking everything", q.Bytes())
	}
	q.Push(item(10, 0))
	q.Ack(5) // more than held: empties, no panic
	if q.Len() != 0 {
		t.Fatal("Ack past the end left items")
	}
}

func TestBufferRefuses(t *testing.T) {
	if _, err := NewBuffer(0, 1); err == nil || !strings.Contains(err.Error(), "must be positive") {
		t.Fatalf("NewBuffer(0, 1): %v", err)
	}
	q, _ := NewBuffer(10, 10)
	q.Push(item(0, 5))
	if _, err := q.Push(make([]byte, 11)); err == nil || !strings.Contains(err.Error(), "larger than the buffer's 10-byte bound") {
		t.Fatalf("oversized push: %v", err)
	}
	if q.Len() != 1 || q.Dropped() != 0 {
		t.Fatal("a refused push changed the buffer")
	}
}
