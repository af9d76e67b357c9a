package policy

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// scope is the set of CEL variables an expression may use. Environments are built
// once per process: they are immutable and building one costs milliseconds.
type scope int

const (
	scopeAdmission     scope = iota // artifact, manifest, caller, deployment
	scopePlacementApp               // app: placement matchConditions, evaluated once per placement
	scopePlacementNode              // app, node: placement constraints and preferences
	scopeRuntime                    // artifact, node
	numScopes
)

func (s scope) vars() string {
	switch s {
	case scopeAdmission:
		return "artifact, manifest, caller and deployment"
	case scopePlacementApp:
		return "app only (matchConditions are evaluated once per placement, before any node)"
	case scopePlacementNode:
		return "app and node"
	case scopeRuntime:
		return "artifact and node"
	}
	return ""
}

var envs = sync.OnceValues(func() ([numScopes]*cel.Env, error) {
	var out [numScopes]*cel.Env
	base, err := cel.NewEnv(
		ext.NativeTypes(
			reflect.TypeFor[Artifact](), reflect.TypeFor[Manifest](), reflect.TypeFor[Caller](),
			reflect.TypeFor[Deployment](), reflect.TypeFor[Strategy](),
			reflect.TypeFor[AppInput](), reflect.TypeFor[NodeInput](),
			reflect.TypeFor[RuntimeArtifact](), reflect.TypeFor[RuntimeNode](),
			ext.ParseStructTag("json"),
		),
		ext.Strings(),
		ext.Lists(),
		ext.Sets(),
		ext.Bindings(),
		cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
		cel.DefaultUTCTimeZone(true),
		cel.ASTValidators(
			cel.ValidateRegexLiterals(),
			cel.ValidateDurationLiterals(),
			cel.ValidateTimestampLiterals(),
			cel.ValidateHomogeneousAggregateLiterals(),
			cel.ValidateComprehensionNestingLimit(3),
		),
	)
	if err != nil {
		return out, fmt.Errorf("build CEL environment: %w", err)
	}
	obj := func(t reflect.Type) *cel.Type { return cel.ObjectType("policy." + t.Name()) }
	decls := [numScopes][]cel.EnvOption{
		scopeAdmission: {
			cel.Variable("artifact", obj(reflect.TypeFor[Artifact]())),
			cel.Variable("manifest", obj(reflect.TypeFor[Manifest]())),
			cel.Variable("caller", obj(reflect.TypeFor[Caller]())),
			cel.Variable("deployment", obj(reflect.TypeFor[Deployment]())),
		},
		scopePlacementApp: {
			cel.Variable("app", obj(reflect.TypeFor[AppInput]())),
		},
		scopePlacementNode: {
			cel.Variable("app", obj(reflect.TypeFor[AppInput]())),
			cel.Variable("node", obj(reflect.TypeFor[NodeInput]())),
		},
		scopeRuntime: {
			cel.Variable("artifact", obj(reflect.TypeFor[RuntimeArtifact]())),
			cel.Variable("node", obj(reflect.TypeFor[RuntimeNode]())),
		},
	}
	for s, d := range decls {
		if out[s], err = base.Extend(d...); err != nil {
			return out, fmt.Errorf("build CEL environment: %w", err)
		}
	}
	return out, nil
})

func envFor(s scope) *cel.Env {
	e, err := envs()
	if err != nil {
		// The declarations are constants of this package: a failure is a bug that
		// every test catches, not a condition to handle.
		panic(err)
	}
	return e[s]
}

// Activations hand the inputs to CEL without copying them into maps; CEL reads the
// fields through the native type provider.

type admissionVars struct{ in *AdmissionInput }

func (a *admissionVars) ResolveName(name string) (any, bool) {
	switch name {
	case "artifact":
		return &a.in.Artifact, true
	case "manifest":
		return &a.in.Manifest, true
	case "caller":
		return &a.in.Caller, true
	case "deployment":
		return &a.in.Deployment, true
	}
	return nil, false
}

func (a *admissionVars) Parent() interpreter.Activation { return nil }

type runtimeVars struct{ in *RuntimeInput }

func (a *runtimeVars) ResolveName(name string) (any, bool) {
	switch name {
	case "artifact":
		return &a.in.Artifact, true
	case "node":
		return &a.in.Node, true
	}
	return nil, false
}

func (a *runtimeVars) Parent() interpreter.Activation { return nil }

type placementVars struct {
	app  *AppInput
	node *NodeInput
}

func (a *placementVars) ResolveName(name string) (any, bool) {
	switch name {
	case "app":
		return a.app, true
	case "node":
		if a.node != nil {
			return a.node, true
		}
	}
	return nil, false
}

func (a *placementVars) Parent() interpreter.Activation { return nil }

// undeclaredHint completes CEL's "undeclared reference" message with the variables the
// expression could have used.
func undeclaredHint(msg string, s scope) string {
	if strings.HasPrefix(msg, "undeclared reference to") {
		return msg + "; this expression can use " + s.vars()
	}
	return msg
}
