package keycache

// Slots returns the number of (KMS key, binding) slots p holds.
func (p *Producer) Slots() int { return len(*p.slots.Load()) }

// Options returns the resolved options of p.
func (p *Producer) Options() ProducerOptions { return p.opts }

// Options returns the resolved options of c.
func (c *Consumer) Options() ConsumerOptions { return c.opts }
