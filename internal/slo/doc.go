// Package slo is Fermion's SLO maths: it decodes SLO specs, computes error budgets and
// burn rates from SLI counts, moves multiwindow multi-burn-rate alerts through their
// lifecycle, and writes the same SLOs as Prometheus rules.
//
// It is pure: no clock, no I/O, no goroutines. Time and SLI counts come in as data
// (now, and a Source the caller implements), so the leader's SLO controller, a test
// with a fake clock and a replay of last week's data all get the same answers. The
// control plane stores the State that Evaluate returns and acts on its transitions.
//
// The pipeline:
//
//  1. specs: Decode reads standalone YAML files (one SLO per document, positioned
//     problems with did-you-mean); ManifestSLO is the [[slo]] table a fermion.toml
//     embeds. Objectives and burn factors are exact decimals (Ratio), never floats.
//  2. counts: a Source answers good and total requests of one series (app, version,
//     scope member) over any window; Intervals is an in-memory Source over interval
//     counts of any length.
//  3. budgets: Budget and Budgets give the spent and remaining error budget over an
//     SLO's window; BurnRate the rate over any window.
//  4. alerts: Evaluate checks every tier of every SLO on both its windows with AtLeast,
//     which cross-multiplies integers so a burn of exactly 14.4× is 14.4×, and moves
//     alerts inactive → pending → firing → resolved, deduplicated by Key, with marks
//     that make a version's pages expected during a controlled rollout. Incidents
//     groups firing alerts into one incident per app.
//  5. rules: Rules writes Sloth-shaped Prometheus recording and alerting rules for the
//     same specs over the metrics the agents export; their comparisons multiply the
//     ratio side with a 1e-9 slack, because Prometheus' float64 rates put an error
//     ratio of exactly 1.44 % a hair below it.
//
// See docs/slo.md for the file format, the presets and the arithmetic.
package slo
