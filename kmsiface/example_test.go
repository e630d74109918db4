package kmsiface_test

import (
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/kmsiface"
)

// Classify turns a KMS error into one of the classes Kinesis server-side
// encryption reports, while keeping the SDK's typed exception reachable.
func ExampleClassify() {
	sdkErr := &types.DisabledException{Message: new(string)}
	err := kmsiface.Classify("GenerateDataKey", sdkErr)

	fmt.Println(errors.Is(err, kmsiface.ErrKeyDisabled))
	var de *types.DisabledException
	fmt.Println(errors.As(err, &de))
	fmt.Println(kmsiface.ClassOf(err))
	// Output:
	// true
	// true
	// kmsiface: key disabled or not in a usable state
}
