package keycache

// Slots returns the number of (KMS key, binding) slots p holds.
func (p *Producer) Slots() int { return len(*p.slots.Load()) }
