// Package version reports the version of the ksse module in the running
// program, for the user-agent markers that ksse adds to AWS requests.
package version

import (
	"runtime/debug"
	"sync"
)

// ModulePath is the path of the ksse module.
const ModulePath = "github.com/ksse-go/ksse"

// Get returns the module version of ksse in the running program: "devel"
// when it is not a released dependency.
var Get = sync.OnceValue(func() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == ModulePath {
				if m.Replace != nil && m.Replace.Version != "" {
					return m.Replace.Version
				}
				return m.Version
			}
		}
		if bi.Main.Path == ModulePath && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
	}
	return "devel"
})
