package dashboards

// Kind is how a panel draws its queries.
type Kind string

const (
	TimeSeries Kind = "timeseries" // lines over time
	Stat       Kind = "stat"       // one big number per series, the latest value
	Table      Kind = "table"      // an instant query's series as rows
	Heatmap    Kind = "heatmap"    // histogram buckets over time
	Logs       Kind = "logs"       // lines from the log store: no PromQL, a note on what to query
)

// Unit is Grafana's unit id for a panel's values.
type Unit string

const (
	Ratio   Unit = "percentunit" // 0..1 shown as a percentage
	Seconds Unit = "s"
	Bytes   Unit = "bytes"
	PerSec  Unit = "reqps"
	Count   Unit = "short"
	Days    Unit = "d"
)

// Query is one PromQL expression of a panel.
type Query struct {
	Expr   string
	Legend string // Grafana legend template, e.g. "{{function}}"
}

// Panel is one chart, table or log view.
type Panel struct {
	Title   string
	Kind    Kind
	Unit    Unit
	Queries []Query
	// Note is prose that follows the queries in docs/telemetry.md and is the panel's
	// description in Grafana: a comparison the metrics cannot make, or, for a Logs
	// panel, what to search for.
	Note string
}

// Variable is a dashboard variable the queries name as $Name.
type Variable struct {
	Name  string
	Label string
	Query string // label_values(...) that lists its values
}

// Dashboard is one of the three.
type Dashboard struct {
	UID     string // Grafana uid, stable across imports
	Title   string // heading in the docs; "Fermion / " + Title in Grafana
	Purpose string // the question it answers
	Vars    []Variable
	Panels  []Panel
}

var (
	functionVar = Variable{Name: "function", Label: "Function", Query: "label_values(fermion_requests_total, function)"}
	instanceVar = Variable{Name: "instance", Label: "Instance", Query: `label_values(up{job="fermion"}, instance)`}
)

// All returns the three dashboards, in the order the docs list them. The queries use
// the recorded series of docs/prometheus/fermion-rules.yaml where there is one.
func All() []Dashboard {
	return []Dashboard{executive(), onCall(), debug()}
}

func executive() Dashboard {
	return Dashboard{
		UID: "fermion-executive", Title: "Executive",
		Purpose: `For "are users getting what we promised?"`,
		Panels: []Panel{
			{Title: "Availability, last 30 days, per function", Kind: Stat, Unit: Ratio, Queries: []Query{
				{`1 - sum by (function) (increase(fermion_requests_total{code="5xx"}[30d])) / sum by (function) (increase(fermion_requests_total[30d]))`, "{{function}}"}}},
			{Title: "Error budget left (SLO 99.9%)", Kind: Stat, Unit: Ratio, Queries: []Query{
				{`1 - (sum by (function) (increase(fermion_requests_total{code="5xx"}[30d])) / sum by (function) (increase(fermion_requests_total[30d]))) / 0.001`, "{{function}}"}}},
			{Title: "Burn rate now (1h), per function and node", Kind: TimeSeries, Unit: Count, Queries: []Query{
				{`instance_function:fermion_requests_5xx:ratio_rate1h / 0.001`, "{{function}} on {{instance}}"}}},
			{Title: "Success rate trend", Kind: TimeSeries, Unit: Ratio, Queries: []Query{
				{`sum by (function) (rate(fermion_requests_total{code!="5xx"}[5m])) / sum by (function) (rate(fermion_requests_total[5m]))`, "{{function}}"}}},
			{Title: "p95 and p99 latency per function", Kind: TimeSeries, Unit: Seconds, Queries: []Query{
				{`histogram_quantile(0.95, sum by (function, le) (rate(fermion_request_duration_seconds_bucket[5m])))`, "p95 {{function}}"},
				{`histogram_quantile(0.99, sum by (function, le) (rate(fermion_request_duration_seconds_bucket[5m])))`, "p99 {{function}}"}}},
			{Title: "Traffic", Kind: TimeSeries, Unit: PerSec, Queries: []Query{
				{`sum by (function) (rate(fermion_requests_total[5m]))`, "{{function}}"}}},
			{Title: "5xx ratio by region (agents)", Kind: TimeSeries, Unit: Ratio, Queries: []Query{
				{`region:fermion_requests_5xx:ratio_rate5m`, "{{region}}"}}},
			{Title: "What is deployed (table)", Kind: Table, Unit: Count, Queries: []Query{
				{`group by (instance, function, version) (fermion_instances)`, ""},
				{`group by (instance, version) (fermion_build_info)`, ""}},
				Note: "the second query is the runtime's version on each node"},
			{Title: "SLO alerts firing", Kind: Table, Unit: Count, Queries: []Query{
				{`ALERTS{alertname=~"FermionErrorBudgetBurn.*", alertstate="firing"}`, ""}}},
			{Title: "Rollouts ended in the last day, by outcome (M10)", Kind: Stat, Unit: Count, Queries: []Query{
				{`sum by (outcome) (increase(fermion_rollouts_total[1d]))`, "{{outcome}}"}},
				Note: "every outcome shows 0 until a rollout ends with it; rolled_back and failed are deploys the canary or a step stopped"},
			{Title: "Rollouts that rolled back or failed, last day (M10)", Kind: Stat, Unit: Ratio, Queries: []Query{
				{`job:fermion_rollouts_failed:ratio_increase1d`, "{{job}}"}},
				Note: "no value (NaN) on a day without an ended rollout; `FermionRolloutsFailing` tickets above 25% in an hour"},
		},
	}
}

func onCall() Dashboard {
	return Dashboard{
		UID: "fermion-oncall", Title: "On-call",
		Purpose: `For "what is broken, where, and why?"`,
		Panels: []Panel{
			{Title: "Firing Fermion alerts, with runbook links", Kind: Table, Unit: Count, Queries: []Query{
				{`ALERTS{alertname=~"Fermion.*", alertstate="firing"}`, ""}},
				Note: "each alert's `runbook_url` annotation links its section under Alert runbooks"},
			{Title: "5xx ratio per function and node", Kind: TimeSeries, Unit: Ratio, Queries: []Query{
				{`instance_function:fermion_requests_5xx:ratio_rate5m`, "{{function}} on {{instance}}"}}},
			{Title: "5xx ratio per node and per region (agents)", Kind: TimeSeries, Unit: Ratio, Queries: []Query{
				{`node:fermion_requests_5xx:ratio_rate5m`, "{{node}}"},
				{`region:fermion_requests_5xx:ratio_rate5m`, "{{region}}"}}},
			{Title: "Why requests fail", Kind: TimeSeries, Unit: PerSec, Queries: []Query{
				{`sum by (instance, function, reason) (rate(fermion_request_errors_total[5m]))`, "{{function}} {{reason}} on {{instance}}"}}},
			{Title: "Status classes", Kind: TimeSeries, Unit: PerSec, Queries: []Query{
				{`sum by (function, code) (rate(fermion_requests_total[5m]))`, "{{function}} {{code}}"}}},
			{Title: "p99 latency per function and node", Kind: TimeSeries, Unit: Seconds, Queries: []Query{
				{`instance_function:fermion_request_duration_seconds:p99_rate5m`, "{{function}} on {{instance}}"}}},
			{Title: "Instances, warm and busy, and the autoscaler's target", Kind: TimeSeries, Unit: Count, Queries: []Query{
				{`sum by (instance, function, state) (fermion_instances)`, "{{function}} {{state}} on {{instance}}"},
				{`sum by (instance, function) (fermion_instances_desired)`, "{{function}} target on {{instance}}"}},
				Note: "compare with the manifest's `max_instances`, which is not a metric"},
			{Title: "Failed instances and their replacements (M6)", Kind: TimeSeries, Unit: PerSec, Queries: []Query{
				{`sum by (instance, function, reason) (rate(fermion_instance_discards_total{reason=~"trap|panic|oom|timeout"}[5m]))`, "{{function}} {{reason}} on {{instance}}"},
				{`sum by (instance, function) (rate(fermion_instance_starts_total{reason="replace"}[5m]))`, "{{function}} replaced on {{instance}}"}}},
			{Title: "Limit rejections", Kind: TimeSeries, Unit: PerSec, Queries: []Query{
				{`sum by (instance, function, limit) (rate(fermion_limit_rejections_total[5m]))`, "{{function}} {{limit}} on {{instance}}"}}},
			{Title: "Cold-start ratio", Kind: TimeSeries, Unit: Ratio, Queries: []Query{
				{`instance_function:fermion_cold_starts:ratio_rate5m`, "{{function}} on {{instance}}"}}},
			{Title: "In flight", Kind: TimeSeries, Unit: Count, Queries: []Query{
				{`fermion_gateway_in_flight_requests`, "{{instance}}"}}},
			{Title: "TLS handshakes by result (F7)", Kind: TimeSeries, Unit: PerSec, Queries: []Query{
				{`sum by (instance, listener, result) (rate(fermion_tls_handshakes_total{result!="ok"}[5m]))`, "{{listener}} {{result}} on {{instance}}"}}},
			{Title: "Days to certificate expiry", Kind: Stat, Unit: Days, Queries: []Query{
				{`(fermion_tls_certificate_expiry_timestamp_seconds - time()) / 86400`, "{{listener}} on {{instance}}"}}},
			{Title: "Nodes up, process restarts", Kind: TimeSeries, Unit: Count, Queries: []Query{
				{`up{job="fermion"}`, "up {{instance}}"},
				{`changes(process_start_time_seconds{job="fermion"}[1h])`, "restarts {{instance}}"}}},
			{Title: "Rollouts ended by outcome, last hour", Kind: TimeSeries, Unit: Count, Queries: []Query{
				{`sum by (job, outcome) (increase(fermion_rollouts_total[1h]))`, "{{outcome}} ({{job}})"}},
				Note: "`fermion events --type rollout` names each rolled-back or failed deployment and why; `fermion rollout status NAME` shows its verdicts"},
			{Title: "Recent failures (log panel)", Kind: Logs,
				Note: "in the log store: lines with `msg=\"request\"` and `status >= 500`, and `msg=\"function error\"`; each carries `request_id` and (request lines) `trace_id`"},
		},
	}
}

func debug() Dashboard {
	return Dashboard{
		UID: "fermion-debug", Title: "Debug",
		Purpose: "For one function, to find the cause.",
		Vars:    []Variable{functionVar, instanceVar},
		Panels: []Panel{
			{Title: "Latency heatmap", Kind: Heatmap, Unit: Seconds, Queries: []Query{
				{`sum by (le) (rate(fermion_request_duration_seconds_bucket{function="$function"}[1m]))`, "{{le}}"}}},
			{Title: "Instance start time by phase (p50, p99)", Kind: TimeSeries, Unit: Seconds, Queries: []Query{
				{`histogram_quantile(0.5, sum by (phase, le) (rate(fermion_instance_start_seconds_bucket{function="$function"}[5m])))`, "p50 {{phase}}"},
				{`histogram_quantile(0.99, sum by (phase, le) (rate(fermion_instance_start_seconds_bucket{function="$function"}[5m])))`, "p99 {{phase}}"}}},
			{Title: "Cold starts against warm instances", Kind: TimeSeries, Unit: Count, Queries: []Query{
				{`sum(rate(fermion_cold_starts_total{function="$function"}[5m]))`, "cold starts/s"},
				{`sum(fermion_instances{function="$function", state="warm"})`, "warm instances"}}},
			{Title: "All discards by reason (includes idle and recycled churn)", Kind: TimeSeries, Unit: PerSec, Queries: []Query{
				{`sum by (reason) (rate(fermion_instance_discards_total{function="$function"}[5m]))`, "{{reason}}"}}},
			{Title: "Traps", Kind: TimeSeries, Unit: PerSec, Queries: []Query{
				{`sum by (instance) (rate(fermion_traps_total{function="$function"}[5m]))`, "{{instance}}"}}},
			{Title: "Outbound calls by result", Kind: TimeSeries, Unit: PerSec, Queries: []Query{
				{`sum by (result) (rate(fermion_outbound_requests_total{function="$function"}[5m]))`, "{{result}}"}}},
			{Title: "Guest log bytes dropped", Kind: TimeSeries, Unit: Bytes, Queries: []Query{
				{`sum by (instance) (rate(fermion_guest_log_dropped_bytes_total{function="$function"}[5m]))`, "{{instance}}"}}},
			{Title: "Compile time of the loaded version", Kind: TimeSeries, Unit: Seconds, Queries: []Query{
				{`sum by (instance, version) (fermion_compile_seconds_sum{function="$function"}) / sum by (instance, version) (fermion_compile_seconds_count{function="$function"})`, "{{version}} on {{instance}}"}}},
			{Title: "Instances' memory against the cap", Kind: TimeSeries, Unit: Bytes, Queries: []Query{
				{`sum by (instance, version) (fermion_instance_memory_bytes{function="$function"}) / sum by (instance, version) (fermion_instances{function="$function"})`, "{{version}} on {{instance}}"}},
				Note: "average per instance; compare with `limits.memory`"},
			{Title: "Process memory, CPU, goroutines", Kind: TimeSeries, Unit: Count, Queries: []Query{
				{`process_resident_memory_bytes{instance="$instance"}`, "resident bytes"},
				{`rate(process_cpu_seconds_total{instance="$instance"}[5m])`, "CPU cores"},
				{`go_goroutines{instance="$instance"}`, "goroutines"}}},
			{Title: "Telemetry health", Kind: TimeSeries, Unit: Count, Queries: []Query{
				{`up{job="fermion"}`, "up {{instance}}"},
				{`scrape_duration_seconds{job="fermion"}`, "scrape seconds {{instance}}"},
				{`scrape_samples_scraped{job="fermion"}`, "samples {{instance}}"}}},
			{Title: "Telemetry backlog", Kind: TimeSeries, Unit: Bytes, Queries: []Query{
				{`sum by (instance) (fermion_telemetry_spool_bytes)`, "{{instance}}"}},
				Note: "spans spooled to disk while the collector is away"},
			{Title: "Request log lines skipped by sampling", Kind: TimeSeries, Unit: PerSec, Queries: []Query{
				{`sum by (instance) (rate(fermion_request_log_skipped_total[5m]))`, "skipped {{instance}}"},
				{`sum by (instance) (rate(fermion_requests_total[5m]))`, "requests {{instance}}"}},
				Note: "node-wide, whatever the function: requests above `--request-log-rate` that got no line, each counted in a later line's `weight`; failures and slow requests always get theirs"},
			{Title: "Slowest requests → traces (log panel)", Kind: Logs,
				Note: "`msg=\"request\"` lines for the function sorted by `duration_ms`; open `trace_id` in the trace backend"},
		},
	}
}
