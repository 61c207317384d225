//! Running brush-parser within bounds: lines nested too deep are not parsed (the
//! parser recurses per level and backtracks between `((` and `(`), and a panic inside
//! it is a line it cannot read, never the end of the process.

use brush_parser::ast;

/// Brackets nested deeper than this are not parsed: the parser recurses per level, and a
/// stack overflow would end the process (a hook that dies lets the call through).
const MAX_NESTING: usize = 100;
/// Parentheses nested deeper than this are not parsed: brush-parser backtracks between
/// `((` arithmetic and `(` subshells, each level multiplying its time by 2 to 4 (24
/// levels of `((`: 0.65 s, 28: 10 s; 18 levels: under 40 ms in the worst shapes tried).
/// A hook that runs past Claude Code's timeout lets the call through.
const MAX_PAREN_NESTING: usize = 16;
/// `if`/`case`/`while`/`for`/`{` nested deeper than this are not parsed (each level costs
/// the parser tens of KiB of stack: 30 nested `case` overflowed 2 MiB).
const MAX_KEYWORD_NESTING: usize = 24;

pub(super) fn options() -> brush_parser::ParserOptions {
    brush_parser::ParserOptions::default()
}

pub(super) fn parse(text: &str) -> Option<ast::Program> {
    let (brackets, parens) = nesting(text);
    if brackets > MAX_NESTING || parens > MAX_PAREN_NESTING || keyword_nesting(text) > MAX_KEYWORD_NESTING {
        return None;
    }
    guarded(|| {
        let opts = options();
        let tokens = brush_parser::uncached_tokenize_str(text, &opts.tokenizer_options()).ok()?;
        brush_parser::parse_tokens(&tokens, &opts).ok()
    })
    .flatten()
}

/// How deep brackets (`(`, `{`, `[`, backquotes) and parentheses alone nest (quotes
/// ignored: an over-count only means a line is not parsed, and so is asked about).
fn nesting(text: &str) -> (usize, usize) {
    let (mut depth, mut max, mut backquote) = (0usize, 0usize, false);
    let (mut parens, mut max_parens) = (0usize, 0usize);
    for b in text.bytes() {
        match b {
            b'(' => {
                depth += 1;
                parens += 1;
                max_parens = max_parens.max(parens);
            }
            b')' => {
                depth = depth.saturating_sub(1);
                parens = parens.saturating_sub(1);
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'`' => {
                backquote = !backquote;
                if backquote { depth += 1 } else { depth = depth.saturating_sub(1) }
            }
            _ => continue,
        }
        max = max.max(depth);
    }
    (max, max_parens)
}

/// How deep compound commands nest, counted on words (`if`…`fi`, `case`…`esac`,
/// `while`/`until`/`for`/`select`…`done`, `{`…`}`); quotes ignored, as in [`nesting`].
fn keyword_nesting(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for w in text.split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')')) {
        match w {
            "if" | "case" | "while" | "until" | "for" | "select" | "{" => {
                depth += 1;
                max = max.max(depth);
            }
            "fi" | "esac" | "done" | "}" => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Run the parser, turning a panic inside it into `None` (a line it cannot read).
pub(super) fn guarded<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Option<T> {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        // The parser's own panics are expected here and handled: keep them off stderr,
        // and leave every other panic to the hook that was there.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.location().is_some_and(|l| l.file().contains("brush-parser")) {
                previous(info);
            }
        }));
    });
    std::panic::catch_unwind(f).ok()
}
