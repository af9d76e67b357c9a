package cli

// PrintInstances is printInstances, for the table's test.
var PrintInstances = printInstances
