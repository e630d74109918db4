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

func main() {
	root := os.Args[1]
	dirs := map[string]bool{}
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if info.IsDir() && (strings.HasPrefix(info.Name(), ".") || info.Name() == "node_modules" || info.Name() == "testdata") && p != root {
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
	totExp, totSent, totFields := 0, 0, 0
	var long []string
	for _, d := range ds {
		fset := token.NewFileSet()
		pkgs, err := parser.ParseDir(fset, d, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ParseComments)
		if err != nil {
			fmt.Println(err)
			continue
		}
		for name, p := range pkgs {
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
			rel := strings.TrimPrefix(d, root)
			if name == "main" || strings.Contains(rel, "internal") || strings.Contains(rel, "examples") {
				continue
			}
			dp := doc.New(p, d, 0)
			exp := 0
			sent := 0
			fields := 0
			for _, c := range dp.Consts {
				exp += len(c.Names)
			}
			for _, v := range dp.Vars {
				exp += len(v.Names)
				for _, n := range v.Names {
					if strings.HasPrefix(n, "Err") {
						sent++
					}
				}
			}
			exp += len(dp.Funcs)
			for _, t := range dp.Types {
				exp++
				exp += len(t.Funcs) + len(t.Methods)
				for _, c := range t.Consts {
					exp += len(c.Names)
				}
				for _, v := range t.Vars {
					exp += len(v.Names)
					for _, n := range v.Names {
						if strings.HasPrefix(n, "Err") {
							sent++
						}
					}
				}
				if st, ok := t.Decl.Specs[0].(*ast.TypeSpec).Type.(*ast.StructType); ok {
					for _, fl := range st.Fields.List {
						for _, n := range fl.Names {
							if n.IsExported() {
								fields++
							}
						}
					}
				}
				if it, ok := t.Decl.Specs[0].(*ast.TypeSpec).Type.(*ast.InterfaceType); ok {
					exp += len(it.Methods.List)
				}
			}
			fmt.Printf("%-22s exported %3d (+%3d fields)  sentinels %2d\n", "."+rel, exp, fields, sent)
			totFields += fields
			totExp += exp
			totSent += sent
		}
	}
	fmt.Printf("%-22s exported %3d (+%3d fields)  sentinels %2d\n", "TOTAL", totExp, totFields, totSent)
	sort.Sort(sort.Reverse(sort.StringSlice(long)))
	fmt.Printf("functions over 80 lines: %d\n", len(long))
	for _, l := range long {
		fmt.Println("  ", l)
	}
}
