// Command sbom joins the two CycloneDX SBOMs that maintained tools write for one plugin file into
// the SBOM of that file, and checks such an SBOM.
//
// cargo-cyclonedx describes the Rust crate linked into the plugin (for the plugin's Rust target);
// cyclonedx-gomod describes the Go modules recorded in the plugin file itself (`bin` mode). Neither
// knows the other half of the file, and the CycloneDX CLI that merges SBOMs is a .NET program no
// registry here serves, so this joins them: the plugin file becomes the described component (name,
// version, SHA-256), the Go shim module and the Rust crate its two parts, every component and
// dependency of both SBOMs kept as the tools wrote them, plus the Go standard library the plugin
// was linked with (its version is in the plugin's build information; `bin` mode omits it).
//
//	sbom join -artifact FILE -version V -rust RUST.cdx.json -go GO.cdx.json -o OUT.cdx.json
//	sbom check [-artifact FILE] [-want NAME]... SBOM.cdx.json
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

type obj = map[string]any

func load(path string) (obj, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var b obj
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("%s: not JSON: %v", path, err)
	}
	if b["bomFormat"] != "CycloneDX" {
		return nil, fmt.Errorf("%s: bomFormat is %v, not CycloneDX", path, b["bomFormat"])
	}
	return b, nil
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func sha256File(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:]), nil
}

// property finds a metadata property the way cyclonedx-gomod writes build settings.
func property(b obj, name string) string {
	md, _ := b["metadata"].(obj)
	for _, p := range list(md["properties"]) {
		if p, ok := p.(obj); ok && p["name"] == name {
			s, _ := p["value"].(string)
			return s
		}
	}
	return ""
}

func join(artifact, version, rustPath, goPath, out string) error {
	rust, err := load(rustPath)
	if err != nil {
		return err
	}
	gob, err := load(goPath)
	if err != nil {
		return err
	}
	sum, err := sha256File(artifact)
	if err != nil {
		return err
	}
	rustMeta, _ := rust["metadata"].(obj)
	goMeta, _ := gob["metadata"].(obj)
	rustMain, _ := rustMeta["component"].(obj)
	goMain, _ := goMeta["component"].(obj)
	if rustMain == nil || goMain == nil {
		return errors.New("both SBOMs must describe a component (metadata.component)")
	}
	name := filepath.Base(artifact)
	fileRef := "file:" + name
	components := []any{rustMain, goMain}
	deps := []any{obj{"ref": fileRef, "dependsOn": []any{goMain["bom-ref"], rustMain["bom-ref"]}}}
	if v := property(gob, "cdx:gomod:build:env:GOVERSION"); v != "" {
		stdRef := "pkg:golang/std@" + v + "?type=module"
		components = append(components, obj{"bom-ref": stdRef, "type": "library", "name": "std", "version": v,
			"description": "The Go standard library", "purl": stdRef})
		deps = append(deps, obj{"ref": stdRef})
		// The shim's entry in the Go SBOM's dependency graph gains the standard library.
		for _, d := range list(gob["dependencies"]) {
			if d, ok := d.(obj); ok && d["ref"] == goMain["bom-ref"] {
				d["dependsOn"] = append(list(d["dependsOn"]), stdRef)
			}
		}
	}
	components = append(append(components, list(rust["components"])...), list(gob["components"])...)
	deps = append(append(deps, list(rust["dependencies"])...), list(gob["dependencies"])...)
	var tools []any
	for _, md := range []obj{rustMeta, goMeta} {
		switch t := md["tools"].(type) {
		case []any:
			tools = append(tools, t...)
		case obj: // CycloneDX 1.5's {components: [...]} form
			tools = append(tools, list(t["components"])...)
		}
	}
	bom := obj{
		"bomFormat":   "CycloneDX",
		"specVersion": "1.5",
		"version":     1,
		"metadata": obj{
			"timestamp": goMeta["timestamp"],
			"tools":     tools,
			"component": obj{"bom-ref": fileRef, "type": "library", "name": name, "version": version,
				"description": "jwk-aggregator, a KrakenD plugin (Go plugin with the Rust core linked in)",
				"hashes":      []any{obj{"alg": "SHA-256", "content": sum}}},
			"properties": goMeta["properties"],
		},
		"components":   components,
		"dependencies": deps,
	}
	raw, err := json.MarshalIndent(bom, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(raw, '\n'), 0o644)
}

func check(path, artifact string, want []string) error {
	b, err := load(path)
	if err != nil {
		return err
	}
	var problems []string
	if v, _ := b["specVersion"].(string); v == "" {
		problems = append(problems, "no specVersion")
	}
	md, _ := b["metadata"].(obj)
	main, _ := md["component"].(obj)
	if main == nil {
		problems = append(problems, "no metadata.component")
	}
	refs := map[string]bool{}
	names := map[string]bool{}
	for _, c := range append(list(b["components"]), main) {
		c, _ := c.(obj)
		if c == nil {
			continue
		}
		ref, _ := c["bom-ref"].(string)
		name, _ := c["name"].(string)
		if c["type"] == nil || name == "" {
			problems = append(problems, fmt.Sprintf("component %q has no type or name", ref))
		}
		if ref != "" && refs[ref] {
			problems = append(problems, "bom-ref listed twice: "+ref)
		}
		refs[ref], names[name] = true, true
	}
	for _, d := range list(b["dependencies"]) {
		d, _ := d.(obj)
		ref, _ := d["ref"].(string)
		for _, r := range append([]any{ref}, list(d["dependsOn"])...) {
			if s, _ := r.(string); !refs[s] {
				problems = append(problems, fmt.Sprintf("dependency %v names no component", r))
			}
		}
	}
	for _, w := range want {
		if !names[w] {
			problems = append(problems, "no component named "+w)
		}
	}
	if artifact != "" && main != nil {
		sum, err := sha256File(artifact)
		if err != nil {
			return err
		}
		hashes := list(main["hashes"])
		if len(hashes) == 0 || hashes[0].(obj)["content"] != sum {
			problems = append(problems, "the described component's SHA-256 is not that of "+artifact)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s:\n  %s", path, strings.Join(problems, "\n  "))
	}
	fmt.Printf("ok: %s (CycloneDX %s, %d components, describes %s)\n", path, b["specVersion"], len(list(b["components"])), main["name"])
	return nil
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: sbom join|check ...")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	artifact := fs.String("artifact", "", "the plugin file the SBOM describes")
	version := fs.String("version", "", "jwk-aggregator's version")
	rust := fs.String("rust", "", "cargo-cyclonedx's SBOM")
	goSBOM := fs.String("go", "", "cyclonedx-gomod's SBOM")
	out := fs.String("o", "", "where to write the joined SBOM")
	var want multi
	fs.Var(&want, "want", "a component name the SBOM must list (repeatable)")
	_ = fs.Parse(os.Args[2:])
	var err error
	switch {
	case os.Args[1] == "join" && *artifact != "" && *rust != "" && *goSBOM != "" && *out != "":
		err = join(*artifact, *version, *rust, *goSBOM, *out)
	case os.Args[1] == "check" && fs.NArg() == 1:
		err = check(fs.Arg(0), *artifact, want)
	default:
		fmt.Fprintln(os.Stderr, "usage:\n  sbom join -artifact FILE -version V -rust RUST.cdx.json -go GO.cdx.json -o OUT.cdx.json\n  sbom check [-artifact FILE] [-want NAME]... SBOM.cdx.json")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sbom:", err)
		os.Exit(1)
	}
}
