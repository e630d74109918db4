// Package stackopt places ksse's middleware in the stack of an
// aws-sdk-go-v2 operation.
package stackopt

import (
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"

	"github.com/ksse-go/ksse/internal/version"
)

// Add returns an APIOptions entry that adds m first in the Initialize step,
// so that the SDK validates, signs, retries and logs what m passes on, and
// adds the user-agent marker "ksse/VERSION". Given twice (to the client and
// to a call), the last m replaces the first rather than running twice.
func Add(m middleware.InitializeMiddleware) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		if _, ok := stack.Initialize.Get(m.ID()); ok {
			_, err := stack.Initialize.Swap(m.ID(), m)
			return err
		}
		if err := stack.Initialize.Add(m, middleware.Before); err != nil {
			return err
		}
		return awsmiddleware.AddUserAgentKeyValue("ksse", version.Get())(stack)
	}
}
