package bendec

import (
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"strings"
	"sync"
	"testing"
)

var (
	checkOnce sync.Once
	checkFset = token.NewFileSet()
	checkImp  types.ImporterFrom
	checkErr  error
)

// genImporter gives generated code this package, type-checked from its source files, and the
// standard library from export data (much faster than type-checking it all from source).
type genImporter struct {
	std    types.Importer
	bendec *types.Package
}

func (g genImporter) Import(path string) (*types.Package, error) { return g.ImportFrom(path, "", 0) }

func (g genImporter) ImportFrom(path, _ string, _ types.ImportMode) (*types.Package, error) {
	if path == "github.com/shmio/shmio/bendec" {
		return g.bendec, nil
	}
	return g.std.Import(path)
}

func loadChecker() {
	std := importer.ForCompiler(checkFset, "gc", nil)
	entries, err := os.ReadDir(".")
	if err != nil {
		checkErr = err
		return
	}
	var files []*ast.File
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			f, err := parser.ParseFile(checkFset, n, nil, 0)
			if err != nil {
				checkErr = err
				return
			}
			files = append(files, f)
		}
	}
	pkg, err := (&types.Config{Importer: std}).Check("github.com/shmio/shmio/bendec", checkFset, files, nil)
	if err != nil {
		checkErr = err
		return
	}
	checkImp = genImporter{std: std, bendec: pkg}
}

// typeCheck fails the test unless src (one file of package p) type-checks.
func typeCheck(t testing.TB, src []byte) {
	t.Helper()
	checkOnce.Do(loadChecker)
	if checkErr != nil {
		t.Fatal(checkErr)
	}
	f, err := parser.ParseFile(checkFset, "gen.go", src, 0)
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	if _, err := (&types.Config{Importer: checkImp}).Check("p", checkFset, []*ast.File{f}, nil); err != nil {
		t.Fatalf("generated code does not compile: %v\n%s", err, src)
	}
}
