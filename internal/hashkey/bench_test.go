package hashkey

import "testing"

func BenchmarkOf(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Of("user-00012345")
	}
}

func BenchmarkSum(b *testing.B) {
	for b.Loop() {
		Sum("user-00012345")
	}
}

func BenchmarkDecimal(b *testing.B) {
	var buf [40]byte
	for b.Loop() {
		appendUint128(buf[:0], 0xfedcba9876543210, 0x0123456789abcdef)
	}
}

func BenchmarkSumOwn(b *testing.B) {
	for b.Loop() {
		sum("user-00012345")
	}
}
