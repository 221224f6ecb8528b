//! Tokenising, identifier splitting and plural folding shared by rules and BM25.
//!
//! One tokenizer serves questions, schema names and rule keywords alike, so that a
//! keyword derived from `singer_in_concert` and the word "singers" in a question meet
//! in the same folded form.

/// Splits `text` into lower-cased words: maximal alphanumeric runs, further split at
/// camelCase boundaries (`StuID` -> `stu`, `id`; `HTTPServer` -> `http`, `server`) and at
/// letter/digit boundaries (`line1` -> `line`, `1`). `_`, spaces and punctuation separate.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut cur = String::new();
    for i in 0..chars.len() {
        let c = chars[i];
        if !c.is_alphanumeric() {
            flush(&mut cur, &mut out);
            continue;
        }
        if !cur.is_empty() {
            let prev = chars[i - 1];
            let next = chars.get(i + 1).copied();
            let boundary = (prev.is_lowercase() && c.is_uppercase())
                || (prev.is_uppercase()
                    && c.is_uppercase()
                    && next.is_some_and(|n| n.is_lowercase()))
                || (prev.is_alphabetic() && c.is_numeric())
                || (prev.is_numeric() && c.is_alphabetic());
            if boundary {
                flush(&mut cur, &mut out);
            }
        }
        cur.extend(c.to_lowercase());
    }
    flush(&mut cur, &mut out);
    out
}

fn flush(cur: &mut String, out: &mut Vec<String>) {
    if !cur.is_empty() {
        out.push(std::mem::take(cur));
    }
}

/// Simple plural / inflection folding, applied to question tokens and rule keywords alike:
/// `countries`/`country` -> `countri`, `movies`/`movie` -> `movi`, `classes` -> `class`,
/// `matches` -> `match`, `courses`/`course` -> `cours`, `singers` -> `singer`.
/// Words of three characters or fewer and words without letters are left alone.
pub fn fold(word: &str) -> String {
    let w = word;
    if w.chars().count() <= 3 || !w.chars().any(|c| c.is_alphabetic()) {
        return w.to_string();
    }
    let mut s: String = if let Some(stem) = w.strip_suffix("ies") {
        format!("{stem}i")
    } else if w.ends_with("sses")
        || w.ends_with("ches")
        || w.ends_with("shes")
        || w.ends_with("xes")
        || w.ends_with("zes")
    {
        w[..w.len() - 2].to_string()
    } else if w.ends_with("ss") || w.ends_with("us") || w.ends_with("is") {
        w.to_string()
    } else if let Some(stem) = w.strip_suffix('s') {
        stem.to_string()
    } else {
        w.to_string()
    };
    if s.chars().count() > 3 && s.ends_with('e') {
        s.pop();
    }
    if s.chars().count() > 2 && s.ends_with('y') {
        s.pop();
        s.push('i');
    }
    s
}

/// Common English words and question scaffolding that say nothing about a database.
const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "along",
    "also",
    "am",
    "among",
    "an",
    "and",
    "any",
    "are",
    "as",
    "ascending",
    "at",
    "average",
    "avg",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "count",
    "descending",
    "desc",
    "asc",
    "did",
    "different",
    "display",
    "distinct",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "either",
    "every",
    "except",
    "few",
    "find",
    "first",
    "for",
    "from",
    "further",
    "give",
    "given",
    "greater",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "him",
    "his",
    "how",
    "i",
    "id",
    "ids",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "larger",
    "largest",
    "last",
    "least",
    "less",
    "list",
    "many",
    "max",
    "maximum",
    "me",
    "min",
    "minimum",
    "more",
    "most",
    "much",
    "must",
    "my",
    "neither",
    "no",
    "nor",
    "not",
    "number",
    "numbers",
    "of",
    "off",
    "on",
    "once",
    "one",
    "only",
    "or",
    "order",
    "ordered",
    "other",
    "others",
    "our",
    "out",
    "over",
    "own",
    "please",
    "report",
    "return",
    "same",
    "she",
    "should",
    "show",
    "smaller",
    "smallest",
    "so",
    "some",
    "sort",
    "sorted",
    "such",
    "sum",
    "tell",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "top",
    "total",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "whats",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "would",
    "you",
    "your",
    "yours",
];

/// True for a word (lower-case, unfolded) that rules and BM25 ignore: a stopword, a single
/// character, or a number.
pub fn is_stopword(word: &str) -> bool {
    word.chars().count() < 2
        || word.chars().all(|c| c.is_numeric())
        || stopword_set().contains(word)
}

fn stopword_set() -> &'static std::collections::HashSet<&'static str> {
    static SET: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    SET.get_or_init(|| STOPWORDS.iter().copied().collect())
}

/// Folded content tokens of `text`, in order: [`words`], minus [`is_stopword`], [`fold`]ed.
pub fn content_tokens(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| !is_stopword(w))
        .map(|w| fold(&w))
        .collect()
}

/// Folded tokens of `text`, stopwords kept (used for matching rule keywords, which may
/// themselves be common words when an LLM wrote them).
pub fn all_tokens(text: &str) -> Vec<String> {
    words(text).into_iter().map(|w| fold(&w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_are_lower_case_words() {
        for w in STOPWORDS {
            assert_eq!(words(w), [w.to_string()], "{w}");
        }
        assert!(is_stopword("the") && is_stopword("x") && is_stopword("2010"));
        assert!(!is_stopword("singer"));
    }

    #[test]
    fn splits_identifiers() {
        assert_eq!(words("singer_in_concert"), ["singer", "in", "concert"]);
        assert_eq!(words("StuID"), ["stu", "id"]);
        assert_eq!(words("HTTPServer"), ["http", "server"]);
        assert_eq!(words("camelCaseName"), ["camel", "case", "name"]);
        assert_eq!(words("address_line1"), ["address", "line", "1"]);
        assert_eq!(words("How many heads?"), ["how", "many", "heads"]);
        assert_eq!(words("  "), Vec::<String>::new());
    }

    #[test]
    fn folds_plurals_consistently() {
        for (a, b) in [
            ("countries", "country"),
            ("movies", "movie"),
            ("classes", "class"),
            ("matches", "match"),
            ("courses", "course"),
            ("singers", "singer"),
            ("addresses", "address"),
            ("employees", "employee"),
            ("prizes", "prize"),
            ("campuses", "campus"),
        ] {
            assert_eq!(fold(a), fold(b), "{a} vs {b}");
        }
        assert_eq!(fold("status"), "status");
        assert_eq!(fold("tennis"), "tennis");
        assert_eq!(fold("2010"), "2010");
        assert_eq!(fold("bus"), "bus");
        assert_ne!(fold("singer"), fold("song"));
    }

    #[test]
    fn content_tokens_drop_stopwords() {
        assert_eq!(
            content_tokens("What are the names of all singers in 2010?"),
            ["nam", "singer"]
        );
    }
}
