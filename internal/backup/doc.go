// Package backup writes the control plane's state — every JetStream key-value bucket
// and object store — to one archive, and restores such an archive into a fresh
// server or cluster through the ordinary KV and object-store APIs, so replication
// works as for any write.
//
// The archive is a gzip-compressed tar:
//
//	fermion-backup.json              format version and when it was taken
//	kv/<bucket>/bucket.json          the bucket's configuration
//	kv/<bucket>/keys/<hex key>       a key's latest value
//	obj/<bucket>/bucket.json         the object store's configuration
//	obj/<bucket>/meta/<hex name>     an object's metadata (JSON)
//	obj/<bucket>/data/<hex name>     the object's bytes
//	end.json                         the counts; its absence means a truncated archive
//
// A backup is taken while the control plane runs: each record is its latest value when
// read, not a snapshot of one instant across buckets. It keeps latest values only, not
// KV history. Streams that are not buckets (events, SLI summaries) are history with
// bounded retention and are not included.
package backup
