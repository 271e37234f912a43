package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"sort"
	"strings"
	"testing"
)

const src = `package p

// Doc comments do not show.
const (
	A Kind = iota + 1
	B
	untypedC = 3
	D = "d"
)

var ErrX error

var hidden int

type Kind int

func (k Kind) String() string { return "" }

type Alias = Kind

type base struct{}

func (base) Promoted(n int) {}
func (*base) PromotedPtr() {}
func (base) unexported() {}

type T struct {
	base
	Name   string
	secret int
	Inner  *T
}

func (t *T) Do(name string, opts ...func(*T)) (int, error) { return 0, nil }

type Sealed interface {
	Open() error
	seal()
}

func New[E any](xs ...E) []E { return xs }

func helper() {}
`

func TestAPILines(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := (&types.Config{}).Check("p", fset, []*ast.File{f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := apiLines(pkg)
	sort.Strings(got)
	want := []string{
		"pkg p, const A Kind = 1",
		"pkg p, const B Kind = 2",
		`pkg p, const D untyped string = "d"`,
		"pkg p, func New[E any](...E) []E",
		"pkg p, method (*T) Do(string, ...func(*T)) (int, error)",
		"pkg p, method (*T) PromotedPtr()",
		"pkg p, method (Kind) String() string",
		"pkg p, method (T) Promoted(int)",
		"pkg p, type Alias = Kind",
		"pkg p, type Kind int",
		"pkg p, type Sealed interface { Open, unexported methods }",
		"pkg p, type Sealed interface, Open() error",
		"pkg p, type T struct",
		"pkg p, type T struct, Inner *T",
		"pkg p, type T struct, Name string",
		"pkg p, type T struct, embedded base",
		"pkg p, var ErrX error",
	}
	if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
		t.Errorf("got\n%s\nwant\n%s", g, w)
	}
}
