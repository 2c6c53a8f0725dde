// Package gitleaks reads, for tests, the true and false positives that
// gitleaks ships with each of its rules, at the version go.mod pins.
//
// gitleaks keeps those samples inside its rule constructors
// (cmd/generate/config/rules), which hand them to utils.Validate and drop
// them. Samples builds the small program in dump/ with a go build overlay
// that replaces utils.Validate by a recorder and adds a function calling
// every constructor, runs it, and decodes what it prints. Nothing of
// gitleaks is copied into this repository.
package gitleaks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Module is the gitleaks module whose rules and samples are used.
const Module = "github.com/zricethezav/gitleaks/v8"

// Sample holds one rule's own test cases.
type Sample struct {
	Rule           string
	TruePositives  []string
	FalsePositives []string
	// Paths: the rule matches on a file path too (ValidateWithPaths);
	// Tollgate scans values, not files, so such rules are not imported.
	Paths bool
}

// ModuleDir is where the pinned gitleaks module is in the module cache.
func ModuleDir() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", Module).Output()
	if err != nil {
		return "", fmt.Errorf("gitleaks: go list -m %s: %w", Module, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		// Listed in go.mod but not downloaded yet.
		if err := exec.Command("go", "mod", "download", Module).Run(); err != nil {
			return "", fmt.Errorf("gitleaks: go mod download %s: %w", Module, err)
		}
		return ModuleDir()
	}
	return dir, nil
}

// Samples returns every rule's true and false positives. It runs the go
// command (a minute the first time, while gitleaks compiles).
func Samples() ([]Sample, error) {
	dir, err := ModuleDir()
	if err != nil {
		return nil, err
	}
	rulesDir := filepath.Join(dir, "cmd", "generate", "config", "rules")
	ctors, err := constructors(rulesDir)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "tollgate-gitleaks-")
	if err != nil {
		return nil, fmt.Errorf("gitleaks: %w", err)
	}
	defer os.RemoveAll(tmp)
	// The module cache is read-only and go build refuses overlays there:
	// build a copy of the module (3 MB) with its own go.mod and go.sum.
	mod := filepath.Join(tmp, "gitleaks")
	if err := os.CopyFS(mod, os.DirFS(dir)); err != nil {
		return nil, fmt.Errorf("gitleaks: copy module: %w", err)
	}
	var all strings.Builder
	all.WriteString("package rules\n\nimport \"github.com/zricethezav/gitleaks/v8/config\"\n\nfunc TollgateAll() []*config.Rule {\n\treturn []*config.Rule{\n")
	for _, c := range ctors {
		fmt.Fprintf(&all, "\t\t%s(),\n", c)
	}
	all.WriteString("\t}\n}\n")
	files := map[string]string{
		filepath.Join("cmd", "generate", "config", "utils", "validate.go"):        recorder,
		filepath.Join("cmd", "generate", "config", "rules", "zz_tollgate_all.go"): all.String(),
		filepath.Join("tollgatedump", "main.go"):                                  dumper,
	}
	for name, text := range files {
		path := filepath.Join(mod, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("gitleaks: %w", err)
		}
		os.Chmod(path, 0o600) // copied read-only from the module cache
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			return nil, fmt.Errorf("gitleaks: %w", err)
		}
	}
	cmd := exec.Command("go", "run", "-mod=mod", "./tollgatedump")
	cmd.Dir = mod
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("gitleaks: dump samples: %w\n%s", err, stderr.String())
	}
	var samples []Sample
	if err := json.Unmarshal(out, &samples); err != nil {
		return nil, fmt.Errorf("gitleaks: decode samples: %w", err)
	}
	return samples, nil
}

// constructors lists the exported functions of the rules package that take
// nothing and return *config.Rule.
func constructors(dir string) ([]string, error) {
	fset := token.NewFileSet()
	matches, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, fmt.Errorf("gitleaks: %w", err)
	}
	var names []string
	for _, path := range matches {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return nil, fmt.Errorf("gitleaks: %w", err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !fn.Name.IsExported() || fn.Type.Params.NumFields() != 0 ||
				fn.Type.Results.NumFields() != 1 {
				continue
			}
			star, ok := fn.Type.Results.List[0].Type.(*ast.StarExpr)
			if !ok {
				continue
			}
			if sel, ok := star.X.(*ast.SelectorExpr); ok && sel.Sel.Name == "Rule" {
				names = append(names, fn.Name.Name)
			}
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("gitleaks: no rule constructors in %s", dir)
	}
	sort.Strings(names)
	return names, nil
}

// dumper prints what the recorder kept.
const dumper = `package main

import (
	"encoding/json"
	"os"

	"github.com/zricethezav/gitleaks/v8/cmd/generate/config/rules"
	"github.com/zricethezav/gitleaks/v8/cmd/generate/config/utils"
)

func main() {
	rules.TollgateAll()
	if err := json.NewEncoder(os.Stdout).Encode(utils.TollgateSamples); err != nil {
		os.Exit(1)
	}
}
`

// recorder replaces cmd/generate/config/utils/validate.go.
const recorder = `package utils

import "github.com/zricethezav/gitleaks/v8/config"

type TollgateSample struct {
	Rule           string
	TruePositives  []string
	FalsePositives []string
	Paths          bool
}

var TollgateSamples []TollgateSample

func Validate(rule config.Rule, truePositives []string, falsePositives []string) *config.Rule {
	TollgateSamples = append(TollgateSamples, TollgateSample{Rule: rule.RuleID, TruePositives: truePositives, FalsePositives: falsePositives})
	return &rule
}

func ValidateWithPaths(rule config.Rule, truePositives map[string]string, falsePositives map[string]string) *config.Rule {
	s := TollgateSample{Rule: rule.RuleID, Paths: true}
	for _, v := range truePositives {
		s.TruePositives = append(s.TruePositives, v)
	}
	for _, v := range falsePositives {
		s.FalsePositives = append(s.FalsePositives, v)
	}
	TollgateSamples = append(TollgateSamples, s)
	return &rule
}
`
