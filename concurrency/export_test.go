package concurrency

// EndCause exposes endCause to the tests.
var EndCause = endCause
