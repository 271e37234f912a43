// Command apicheck prints the exported API of Go packages, one line per
// exported name with its signature and no doc comments, sorted, in the shape
// of the Go project's own api/*.txt files:
//
//	pkg etcdgw, func New(...Option) (*Client, error)
//	pkg etcdgw, method (*Client) Close() error
//	pkg etcdgw, type GetResponse struct, Kvs []*mvccpb.KeyValue
//
// Usage:
//
//	go run ./internal/apicheck DIR...
//
// Each DIR is a package directory (".", "concurrency", ...); test files are
// skipped, and build constraints are evaluated for linux/amd64 without cgo so
// that the output is the same on every machine. scripts/apicheck.sh compares
// the output with the snapshots under api/.
//
// The packages are type-checked (go/types) from source, with their imports
// read from the compiler's export data (`go list -export`, from the build
// cache), so the lines show what a caller sees: methods promoted from embedded
// fields, constant values, and method sets of both T and *T. Parameter names
// are left out: renaming a parameter does not change the API.
//
// It lives under internal/ so that it is not part of the public API.
package main

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: apicheck DIR...")
		os.Exit(2)
	}
	dirs := os.Args[1:]
	exports, err := exportData(dirs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "apicheck: %v\n", err)
		os.Exit(1)
	}
	imp := importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %q", path)
		}
		return os.Open(file)
	})
	var lines []string
	for _, dir := range dirs {
		l, err := packageAPI(dir, imp)
		if err != nil {
			fmt.Fprintf(os.Stderr, "apicheck: %s: %v\n", dir, err)
			os.Exit(1)
		}
		lines = append(lines, l...)
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
}

// buildContext is the fixed platform the API is read for.
func buildContext() build.Context {
	ctx := build.Default
	ctx.GOOS = "linux"
	ctx.GOARCH = "amd64"
	ctx.CgoEnabled = false
	return ctx
}

// exportData maps the import path of every dependency of the packages in
// dirs to its export data file, building what the build cache lacks.
func exportData(dirs []string) (map[string]string, error) {
	args := []string{"list", "-export", "-deps", "-f", "{{.ImportPath}}={{.Export}}", "--"}
	for _, d := range dirs {
		args = append(args, "./"+filepath.ToSlash(filepath.Clean(d)))
	}
	cmd := exec.Command("go", args...)
	ctx := buildContext()
	cmd.Env = append(os.Environ(), "GOOS="+ctx.GOOS, "GOARCH="+ctx.GOARCH, "CGO_ENABLED=0")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -export: %v", err)
	}
	m := make(map[string]string)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, file, ok := strings.Cut(line, "=")
		if ok && file != "" {
			m[path] = file
		}
	}
	return m, nil
}

// packageAPI type-checks the package in dir (without its tests) and returns
// its API lines.
func packageAPI(dir string, imp types.Importer) ([]string, error) {
	ctx := buildContext()
	bp, err := ctx.ImportDir(dir, 0)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range bp.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	conf := types.Config{Importer: imp}
	pkg, err := conf.Check(bp.Name, fset, files, nil)
	if err != nil {
		return nil, err
	}
	return apiLines(pkg), nil
}

// apiLines returns one line per exported name of pkg (and per exported field
// and method of its exported types), unsorted.
func apiLines(pkg *types.Package) []string {
	w := writer{pkg: pkg}
	scope := pkg.Scope()
	for _, name := range scope.Names() {
		if !token.IsExported(name) {
			continue
		}
		switch obj := scope.Lookup(name).(type) {
		case *types.Const:
			w.emit("const %s %s = %s", name, w.typ(obj.Type()), obj.Val().ExactString())
		case *types.Var:
			w.emit("var %s %s", name, w.typ(obj.Type()))
		case *types.Func:
			sig := obj.Type().(*types.Signature)
			w.emit("func %s%s%s", name, w.typeParams(sig.TypeParams()), w.signature(sig))
		case *types.TypeName:
			w.typeName(obj)
		}
	}
	return w.lines
}

type writer struct {
	pkg   *types.Package
	lines []string
}

func (w *writer) emit(format string, args ...any) {
	w.lines = append(w.lines, "pkg "+w.pkg.Name()+", "+fmt.Sprintf(format, args...))
}

// qualifier names the package's own types bare and others by package name,
// as a caller writes them.
func (w *writer) qualifier(p *types.Package) string {
	if p == w.pkg {
		return ""
	}
	return p.Name()
}

func (w *writer) typ(t types.Type) string {
	return types.TypeString(t, w.qualifier)
}

// signature prints a signature's parameters and results by type only.
func (w *writer) signature(sig *types.Signature) string {
	var b strings.Builder
	b.WriteString("(")
	params := sig.Params()
	for i := 0; i < params.Len(); i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		t := params.At(i).Type()
		if sig.Variadic() && i == params.Len()-1 {
			b.WriteString("..." + w.typ(t.(*types.Slice).Elem()))
			continue
		}
		b.WriteString(w.typ(t))
	}
	b.WriteString(")")
	results := sig.Results()
	switch results.Len() {
	case 0:
	case 1:
		b.WriteString(" " + w.typ(results.At(0).Type()))
	default:
		b.WriteString(" (")
		for i := 0; i < results.Len(); i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(w.typ(results.At(i).Type()))
		}
		b.WriteString(")")
	}
	return b.String()
}

func (w *writer) typeParams(tps *types.TypeParamList) string {
	if tps.Len() == 0 {
		return ""
	}
	var parts []string
	for i := 0; i < tps.Len(); i++ {
		tp := tps.At(i)
		parts = append(parts, tp.Obj().Name()+" "+w.typ(tp.Constraint()))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// typeName emits an exported type: its kind, its exported fields or
// interface methods, and the exported methods of T and *T.
func (w *writer) typeName(obj *types.TypeName) {
	name := obj.Name()
	if obj.IsAlias() {
		w.emit("type %s = %s", name, w.typ(types.Unalias(obj.Type())))
		return
	}
	named, ok := obj.Type().(*types.Named)
	if !ok {
		w.emit("type %s %s", name, w.typ(obj.Type()))
		return
	}
	decl := name + w.typeParams(named.TypeParams())
	switch u := named.Underlying().(type) {
	case *types.Struct:
		w.emit("type %s struct", decl)
		for i := 0; i < u.NumFields(); i++ {
			f := u.Field(i)
			switch {
			case f.Embedded():
				w.emit("type %s struct, embedded %s", decl, w.typ(f.Type()))
			case f.Exported():
				w.emit("type %s struct, %s %s", decl, f.Name(), w.typ(f.Type()))
			}
		}
	case *types.Interface:
		var methods []string
		unexported := false
		for i := 0; i < u.NumMethods(); i++ {
			m := u.Method(i)
			if !m.Exported() {
				unexported = true
				continue
			}
			methods = append(methods, m.Name())
			w.emit("type %s interface, %s%s", decl, m.Name(), w.signature(m.Type().(*types.Signature)))
		}
		if unexported {
			methods = append(methods, "unexported methods")
		}
		w.emit("type %s interface { %s }", decl, strings.Join(methods, ", "))
		return // an interface's methods are listed above
	default:
		w.emit("type %s %s", decl, w.typ(u))
	}

	// The method set of *T holds T's; a method in T's set has a value receiver
	// (or is promoted through a value), the rest need a pointer.
	valueSet := types.NewMethodSet(named)
	ptrSet := types.NewMethodSet(types.NewPointer(named))
	for i := 0; i < ptrSet.Len(); i++ {
		m := ptrSet.At(i).Obj()
		if !m.Exported() {
			continue
		}
		recv := decl
		if valueSet.Lookup(m.Pkg(), m.Name()) == nil {
			recv = "*" + decl
		}
		w.emit("method (%s) %s%s", recv, m.Name(), w.signature(m.Type().(*types.Signature)))
	}
}
