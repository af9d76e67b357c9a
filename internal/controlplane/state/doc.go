// Package state is the control plane's typed state layer over NATS JetStream: one
// key-value bucket per kind of record, each mirrored in memory by a Table, the leader
// lease's bucket, and the event stream. Every role of the control plane (the API
// handlers, the agent service, the leader election, the controllers) holds the Store,
// or the tables it needs, rather than raw buckets.
//
// # Desired and observed state
//
// Desired state is what users ask for: deployments, policies, tokens. Observed state
// is what the fleet reports: nodes, their leases, the instances' statuses. Between
// them sit the controllers' decisions: placements and assignments. The bucket
// comments on Store say who writes which; nothing else does.
//
// # Reads: tables
//
// A Table is an informer: a watch keeps a copy of its bucket in memory, so reads
// (Get, List, Each, EachOfNode, Keys) cost a map lookup and never a round trip. Every
// read carries the record's revision. A write goes to the bucket and comes back
// through the watch; WaitRev (or WaitGone) waits for it, to read one's own writes.
// Watch registers a function called on every applied change, which is how
// consumers wake (a controller's kick, a push of assignments to a node); Changes
// gives a channel closed at the next change, for consumers that rebuild lazily.
//
// # Writes: compare-and-swap
//
// Every write that depends on a read is conditional on what it read: Update reads the
// bucket (not the table, which may lag), calls a function with the current value and
// writes the result with the revision it read, retrying from the read when another
// writer won (counted in CASConflicts). DeleteAt deletes only an unchanged record;
// PutIfLast writes only if nothing in the bucket changed since a sequence (admission
// claims the whole state its dry run saw). Put is for records with one writer.
//
// # Fencing
//
// Controllers act only on the replica holding the leader lease, and write only
// through a Fence: each fenced bucket holds a record carrying the lease's revision
// (the term) of the last leader that fenced it, and every fenced write (FencedPut,
// FencedDelete, FencedUpdate, FencedDeleteAt) is published with the expectation that
// this record is still the one this leader wrote. A paused or deposed leader's write
// is refused by the stream itself, and the refusal steps it down. A new leader fences
// every bucket before its first decision and waits until its tables hold the fences,
// so it decides on a state that includes every write its predecessor got in.
//
// # Durability
//
// A single server syncs every write that must survive a crash (the engine's
// SyncAlways); a cluster keeps three replicas of every bucket. Leases live in memory:
// they are rewritten by every heartbeat and worth nothing after a restart, since a
// new leader waits a full lost period before judging any node.
package state
