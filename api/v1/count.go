package v1

import (
	"strconv"
	"strings"
)

// --- Counts in messages ---

// Count is n with noun in the number n calls for, as the API's messages and the CLI's
// lines count things: "1 deployment", "3 deployments", "0 nodes", "2 policies". Every
// "%d <noun>s" whose n may be 1 goes through it, so none says "1 deployments". The
// plural is English's regular one, enough for the nouns Fermion counts: a consonant
// and y make -ies, a sibilant (s, x, z, ch, sh) takes -es, the rest -s.
func Count[N ~int | ~int32 | ~int64 | ~uint | ~uint32 | ~uint64](n N, noun string) string {
	s := strconv.FormatInt(int64(n), 10)
	if n == 1 {
		return s + " " + noun
	}
	return s + " " + plural(noun)
}

// plural is noun's regular English plural.
func plural(noun string) string {
	if noun == "" {
		return noun
	}
	switch last := noun[len(noun)-1]; {
	case last == 'y' && len(noun) > 1 && !isVowel(noun[len(noun)-2]):
		return noun[:len(noun)-1] + "ies"
	case last == 's' || last == 'x' || last == 'z' || strings.HasSuffix(noun, "ch") || strings.HasSuffix(noun, "sh"):
		return noun + "es"
	}
	return noun + "s"
}

func isVowel(c byte) bool {
	switch c {
	case 'a', 'e', 'i', 'o', 'u':
		return true
	}
	return false
}
