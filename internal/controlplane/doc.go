// Package controlplane is the server role: the HTTP API under /v1, the agent protocol
// over NATS, and the controllers (scheduler, node lifecycle, drain) that run on the
// replica holding the leader lease, over the state in NATS JetStream (package state).
// Every replica answers the API and the agents; only the leader writes assignments.
//
// # Shape
//
// Server is a small composition root, as in Nomad: Start opens the state, builds one
// type per concern, wires them and starts their loops; Close stops them. Each type
// holds the state (or the tables it needs) and the few services it calls, passed in
// at construction, never the Server:
//
//	state.Store    the tables (typed, CAS writes, watches), the leader bucket, the events
//	state.Fence    the leader lease as the controllers may use it; every controller write
//	election       holds or seeks the lease, moves the fence, says who leads   (leader.go)
//	controllers    the leader's loop over the registered Controllers and LeaderRunners
//	  lifecycleController   lost / ready / drained by the leases              (lifecycle.go)
//	  rolloutController     a changed version's rollout: steps, analysis, outcome (rollouts.go)
//	  deploymentController  placement, assignments, drain moves, retire      (controller.go)
//	  revisionController    backfill, prune and clean up revisions           (revisions.go)
//	placer         the scheduler's problem from the tables and policies       (placement.go)
//	admitter       deploy-time dry run and the write conditional on it        (admission.go)
//	policies       the compiled set in force, admission and placement checks  (policies.go)
//	agentService   join, register, heartbeat, assignment pushes               (agents.go)
//	api            the /v1 handlers behind one auth/role/metrics wrapper      (api*.go)
//	instancesAPI   instance timelines, asked of the nodes on demand  (api_instances.go)
//	tokenStore, eventLog, imageResolver: tokens, events, image resolution
//
// Wiring is explicit in Server.build: who records events (an event func), who wakes
// the controllers (table watches), what a new leader does first.
//
// # Extension points
//
// A new controller implements Controller (Name, Reconcile, run in order in every
// pass while this replica acts as leader) or LeaderRunner (Name, Run under a context
// that ends when leadership does), holds the state and the fence for its writes, and
// is one line in Server.registerControllers. Pure decisions belong in a pure package
// (scheduler, policy, slo), with the controller a thin adapter.
//
// A new API resource is a routeGroup (a func taking a routeFunc) in its own
// api_<resource>.go, registered with one line in Server.routeGroups: its routes get
// the same token authentication, least-role check, body limit, request ids, error
// bodies and metrics (serveAPI) as every other.
//
// A new agent request is one line in agentService.requests.
package controlplane
