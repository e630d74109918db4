//go:build ignore

// Command surface counts, per library package of a Go module, the exported
// identifiers (constants, variables, functions, types, methods and
// interface methods; struct fields apart) and the sentinel errors (exported
// variables named Err…), and lists the functions over 80 lines.
//
//	go run scripts/surface.go .
package main

import (
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// count is the surface of one package.
type count struct{ exported, fields, sentinels int }

func main() {
	root := filepath.Clean(os.Args[1])
	var total count
	var long []string
	for _, d := range packageDirs(root) {
		fset := token.NewFileSet()
		pkgs, err := parser.ParseDir(fset, d, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ParseComments)
		if err != nil {
			fmt.Println(err)
			continue
		}
		for name, p := range pkgs {
			long = append(long, longFuncs(fset, root, p)...)
			rel, _ := filepath.Rel(root, d)
			if name == "main" || strings.Contains(rel, "internal") || strings.Contains(rel, "examples") {
				continue
			}
			c := surface(doc.New(p, d, 0))
			fmt.Printf("%-22s exported %3d (+%3d fields)  sentinels %2d\n", "./"+rel, c.exported, c.fields, c.sentinels)
			total.exported += c.exported
			total.fields += c.fields
			total.sentinels += c.sentinels
		}
	}
	fmt.Printf("%-22s exported %3d (+%3d fields)  sentinels %2d\n", "TOTAL", total.exported, total.fields, total.sentinels)
	sort.Sort(sort.Reverse(sort.StringSlice(long)))
	fmt.Printf("functions over 80 lines: %d\n", len(long))
	for _, l := range long {
		fmt.Println("  ", l)
	}
}

// packageDirs returns the directories under root that hold Go files.
func packageDirs(root string) []string {
	dirs := map[string]bool{}
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		skip := strings.HasPrefix(info.Name(), ".") || info.Name() == "node_modules" || info.Name() == "testdata"
		if info.IsDir() && skip && p != root {
			return filepath.SkipDir
		}
		if strings.HasSuffix(p, ".go") {
			dirs[filepath.Dir(p)] = true
		}
		return nil
	})
	var ds []string
	for d := range dirs {
		ds = append(ds, d)
	}
	sort.Strings(ds)
	return ds
}

// longFuncs lists the functions of p over 80 lines.
func longFuncs(fset *token.FileSet, root string, p *ast.Package) []string {
	var long []string
	for fn, f := range p.Files {
		for _, decl := range f.Decls {
			if fd, ok := decl.(*ast.FuncDecl); ok && fd.Body != nil {
				n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
				if n > 80 {
					long = append(long, fmt.Sprintf("%4d %s:%s", n, strings.TrimPrefix(fn, root+"/"), fd.Name.Name))
				}
			}
		}
	}
	return long
}

// surface counts the exported names of a package's documentation.
func surface(dp *doc.Package) count {
	var c count
	values := func(vs []*doc.Value, vars bool) {
		for _, v := range vs {
			c.exported += len(v.Names)
			for _, n := range v.Names {
				if vars && strings.HasPrefix(n, "Err") {
					c.sentinels++
				}
			}
		}
	}
	values(dp.Consts, false)
	values(dp.Vars, true)
	c.exported += len(dp.Funcs)
	for _, t := range dp.Types {
		c.exported += 1 + len(t.Funcs) + len(t.Methods)
		values(t.Consts, false)
		values(t.Vars, true)
		switch tt := t.Decl.Specs[0].(*ast.TypeSpec).Type.(type) {
		case *ast.StructType:
			for _, fl := range tt.Fields.List {
				for _, n := range fl.Names {
					if n.IsExported() {
						c.fields++
					}
				}
			}
		case *ast.InterfaceType:
			c.exported += len(tt.Methods.List)
		}
	}
	return c
}
