package bendec

import (
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"sync"
	"testing"
)

var (
	checkOnce sync.Once
	checkFset *token.FileSet
	checkImp  types.Importer // shared, so the bendec package is type-checked from source once
)

// typeCheck fails the test unless src (one file of package p) type-checks.
func typeCheck(t testing.TB, src []byte) {
	t.Helper()
	checkOnce.Do(func() {
		checkFset = token.NewFileSet()
		checkImp = importer.ForCompiler(checkFset, "source", nil)
	})
	f, err := parser.ParseFile(checkFset, "gen.go", src, 0)
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	conf := types.Config{Importer: checkImp}
	if _, err := conf.Check("p", checkFset, []*ast.File{f}, nil); err != nil {
		t.Fatalf("generated code does not compile: %v\n%s", err, src)
	}
}
