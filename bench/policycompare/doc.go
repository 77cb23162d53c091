// Package policycompare benchmarks daoguard's policy engine against OPA
// (Rego) and cedar-go evaluating equivalent policies in the same run. It is
// a module of its own so that OPA and cedar-go, which daoguard does not
// use, stay out of daoguard's dependency graph.
//
//	cd bench/policycompare && go test -run '^$' -bench . -benchtime 20000x
package policycompare
