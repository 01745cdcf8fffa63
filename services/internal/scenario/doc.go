// Package scenario walks the chains of help of DOMAIN.md across the four kinds of node; it holds only tests.
package scenario
