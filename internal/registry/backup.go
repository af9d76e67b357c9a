package registry

// What a backup of the control plane's state (internal/backup) needs to know of the
// registry's buckets.

// Buckets are the registry's buckets that hold artifacts: a restore writes them before
// anything that refers to an artifact.
var Buckets = []string{bucketBlobs, bucketManifests, bucketTags, bucketLinks, bucketReferrers}

// UploadsBucket holds upload sessions in progress: transient, never backed up.
const UploadsBucket = bucketUploads
