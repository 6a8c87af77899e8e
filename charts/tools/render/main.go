// Command render renders a Helm chart's templates the way `helm template` does, for tests on
// machines without a helm binary. It is a small, deliberately conservative stand-in: Go
// text/template with the sprig functions (minus env and expandenv, as helm removes them),
// helm's include, tpl, required, toYaml, fromYaml, toJson and lookup, and the .Values,
// .Release, .Chart, .Capabilities, .Template and .Files objects. Values files are deep-merged
// (null deletes a key) and their numbers become float64, as in helm, so templates that would
// trip over helm's number types trip here too.
//
// Build in GOPATH mode against Debian's packages:
//
//	GO111MODULE=off GOPATH=$tmp:/usr/share/gocode go build -o render main.go
//
// Usage:
//
//	render -chart DIR [-f values.yaml]... [-api-versions group/version]... [-kube-version 1.30.0]
//	       [-name release] [-namespace ns] [-notes FILE] [-values-out FILE]
//
// The manifests go to stdout as a YAML stream, each document headed by `# Source: <template>`.
// -values-out writes the merged values as JSON, for checking them against values.schema.json
// as helm does.
// The real helm remains the reference: run `helm lint` and `helm template` where one exists.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// apiVersions answers .Capabilities.APIVersions.Has.
type apiVersions []string

func (a apiVersions) Has(v string) bool {
	for _, have := range a {
		if have == v {
			return true
		}
	}
	return false
}

// files answers .Files.Get for paths relative to the chart directory.
type files struct{ root string }

func (f files) Get(name string) string {
	clean := path.Clean("/" + name)
	data, err := os.ReadFile(filepath.Join(f.root, filepath.FromSlash(clean)))
	if err != nil {
		return ""
	}
	return string(data)
}

// builtinAPIVersions are the group/versions a current cluster serves (helm's default set,
// trimmed to what charts commonly test for).
var builtinAPIVersions = []string{
	"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v1", "autoscaling/v2",
	"networking.k8s.io/v1", "rbac.authorization.k8s.io/v1", "storage.k8s.io/v1",
	"coordination.k8s.io/v1", "discovery.k8s.io/v1", "scheduling.k8s.io/v1",
}

func main() {
	chartDir := flag.String("chart", "", "chart directory")
	name := flag.String("name", "release-name", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kubeVersion := flag.String("kube-version", "1.30.0", "Kubernetes version for .Capabilities")
	notesOut := flag.String("notes", "", "write the rendered NOTES.txt here")
	valuesOut := flag.String("values-out", "", "write the merged values here, as JSON")
	var valueFiles, extraAPIs listFlag
	flag.Var(&valueFiles, "f", "values file (repeatable; later files win)")
	flag.Var(&extraAPIs, "api-versions", "extra API version for .Capabilities (repeatable)")
	flag.Parse()
	if *chartDir == "" {
		fail("-chart is required")
	}
	values, err := loadValues(*chartDir, valueFiles)
	if err != nil {
		fail(err.Error())
	}
	if *valuesOut != "" {
		data, err := json.MarshalIndent(values, "", "  ")
		if err != nil {
			fail(err.Error())
		}
		if err := os.WriteFile(*valuesOut, append(data, '\n'), 0o644); err != nil {
			fail(err.Error())
		}
	}
	out, notes, err := render(*chartDir, *name, *namespace, *kubeVersion, values, extraAPIs)
	if err != nil {
		fail(err.Error())
	}
	if *notesOut != "" {
		if err := os.WriteFile(*notesOut, []byte(notes), 0o644); err != nil {
			fail(err.Error())
		}
	}
	os.Stdout.WriteString(out)
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "render: "+msg)
	os.Exit(1)
}

// loadValues reads the chart's values.yaml and merges the overlays into it, in order.
func loadValues(chartDir string, valueFiles []string) (map[string]interface{}, error) {
	values, err := readYAML(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return nil, err
	}
	for _, f := range valueFiles {
		overlay, err := readYAML(f)
		if err != nil {
			return nil, err
		}
		values = merge(values, overlay)
	}
	return floats(values).(map[string]interface{}), nil
}

func render(chartDir, name, namespace, kubeVersion string, values map[string]interface{}, extraAPIs []string) (string, string, error) {
	chartMeta, err := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return "", "", err
	}

	chartName, _ := chartMeta["name"].(string)
	chart := map[string]interface{}{}
	for k, v := range chartMeta {
		// Helm exposes Chart.yaml keys capitalised: .Chart.Name, .Chart.AppVersion.
		chart[strings.ToUpper(k[:1])+k[1:]] = v
	}
	major, minor := "1", "30"
	if parts := strings.SplitN(strings.TrimPrefix(kubeVersion, "v"), ".", 3); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	top := map[string]interface{}{
		"Values": values,
		"Chart":  chart,
		"Release": map[string]interface{}{
			"Name": name, "Namespace": namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Capabilities": map[string]interface{}{
			"APIVersions": apiVersions(append(append([]string{}, builtinAPIVersions...), extraAPIs...)),
			"KubeVersion": map[string]interface{}{
				"Version": "v" + strings.TrimPrefix(kubeVersion, "v"), "GitVersion": "v" + strings.TrimPrefix(kubeVersion, "v"),
				"Major": major, "Minor": minor,
			},
		},
		"Files": files{root: chartDir},
	}

	// Every file under templates/, named as helm names it: <chart>/templates/<path>.
	var names []string
	sources := map[string]string{}
	templatesDir := filepath.Join(chartDir, "templates")
	err = filepath.Walk(templatesDir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(templatesDir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n := path.Join(chartName, "templates", filepath.ToSlash(rel))
		names = append(names, n)
		sources[n] = string(data)
		return nil
	})
	if err != nil {
		return "", "", err
	}
	sort.Strings(names)

	var t *template.Template
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := t.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		clone, err := t.Clone()
		if err != nil {
			return "", err
		}
		parsed, err := clone.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = parsed.Execute(&buf, data)
		return strings.ReplaceAll(buf.String(), "<no value>", ""), err
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	funcs["toYaml"] = func(v interface{}) string {
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(v); err != nil {
			return ""
		}
		return strings.TrimSuffix(buf.String(), "\n")
	}
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["lookup"] = func(...interface{}) map[string]interface{} { return map[string]interface{}{} }

	t = template.New(chartName).Funcs(funcs).Option("missingkey=zero")
	for _, n := range names {
		if _, err := t.New(n).Parse(sources[n]); err != nil {
			return "", "", err
		}
	}

	var out strings.Builder
	notes := ""
	for _, n := range names {
		base := path.Base(n)
		if strings.HasPrefix(base, "_") {
			continue
		}
		data := map[string]interface{}{}
		for k, v := range top {
			data[k] = v
		}
		data["Template"] = map[string]interface{}{
			"Name": n, "BasePath": path.Join(chartName, "templates"),
		}
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, n, data); err != nil {
			return "", "", err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if base == "NOTES.txt" {
			notes = text
			continue
		}
		for _, doc := range splitDocuments(text) {
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", n, doc)
		}
	}
	return out.String(), notes, nil
}

// splitDocuments splits a rendered template on `---` lines and drops empty documents.
func splitDocuments(text string) []string {
	var docs []string
	var cur []string
	flush := func() {
		doc := strings.TrimSpace(strings.Join(cur, "\n"))
		cur = nil
		empty := true
		for _, line := range strings.Split(doc, "\n") {
			l := strings.TrimSpace(line)
			if l != "" && !strings.HasPrefix(l, "#") {
				empty = false
			}
		}
		if !empty {
			docs = append(docs, doc)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimRight(line, " ") == "---" {
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	return docs
}

func readYAML(file string) (map[string]interface{}, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	return m, nil
}

// merge returns base with overlay deep-merged into it; a null in overlay deletes the key.
func merge(base, overlay map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range overlay {
		if v == nil {
			delete(out, k)
			continue
		}
		if om, ok := v.(map[string]interface{}); ok {
			bm, _ := out[k].(map[string]interface{})
			if bm == nil {
				bm = map[string]interface{}{}
			}
			out[k] = merge(bm, om)
			continue
		}
		out[k] = v
	}
	return out
}

// floats turns every integer into float64, as helm's JSON round trip of values does.
func floats(v interface{}) interface{} {
	switch x := v.(type) {
	case map[string]interface{}:
		for k, e := range x {
			x[k] = floats(e)
		}
		return x
	case []interface{}:
		for i, e := range x {
			x[i] = floats(e)
		}
		return x
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	default:
		return v
	}
}
