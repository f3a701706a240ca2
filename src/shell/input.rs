//! Reading SQL in the shell, before anything reaches the session: decides when the typed lines
//! form complete statements (a `;` outside strings, quoted identifiers and comments), splits the
//! buffer into statements, and spots the shell's own commands (`quit;`, `exit;`).
//!
//! This is a light scanner, not a parser: the session parses for real once a buffer is complete.

/// One statement of the input buffer: its byte range, without the terminating `;`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub start: usize,
    pub end: usize,
}

/// The result of scanning a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scan {
    /// Byte offsets of every `;` outside strings and comments.
    terminators: Vec<usize>,
    /// Whether the buffer ends inside a string, quoted identifier or block comment.
    open: bool,
    /// Whether anything but whitespace and comments follows the last terminator.
    trailing_text: bool,
}

fn scan(buf: &str) -> Scan {
    #[derive(PartialEq)]
    enum State {
        Normal,
        Quoted(u8),
        LineComment,
        BlockComment,
    }
    let bytes = buf.as_bytes();
    let mut state = State::Normal;
    let mut terminators = Vec::new();
    let mut trailing_text = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        match state {
            State::Normal => match b {
                b'\'' | b'"' | b'`' => {
                    state = State::Quoted(b);
                    trailing_text = true;
                }
                b'-' if next == Some(b'-') => {
                    state = State::LineComment;
                    i += 1;
                }
                b'/' if next == Some(b'*') => {
                    state = State::BlockComment;
                    i += 1;
                }
                b';' => {
                    terminators.push(i);
                    trailing_text = false;
                }
                b if b.is_ascii_whitespace() => {}
                _ => trailing_text = true,
            },
            State::Quoted(q) => {
                if b == q {
                    // A doubled quote is an escaped quote inside the string.
                    if next == Some(q) {
                        i += 1;
                    } else {
                        state = State::Normal;
                    }
                }
            }
            State::LineComment => {
                if b == b'\n' {
                    state = State::Normal;
                }
            }
            State::BlockComment => {
                if b == b'*' && next == Some(b'/') {
                    state = State::Normal;
                    i += 1;
                }
            }
        }
        i += 1;
    }
    let open = matches!(state, State::Quoted(_) | State::BlockComment);
    Scan {
        terminators,
        open,
        trailing_text,
    }
}

/// Splits a buffer into its statements at the `;`s outside strings and comments. Statements that
/// are empty (only whitespace or comments) are left out; text after the last `;` is the last
/// chunk if there is any.
pub fn split_statements(buf: &str) -> Vec<Chunk> {
    let s = scan(buf);
    let mut chunks = Vec::new();
    let mut start = 0;
    let ends = s
        .terminators
        .iter()
        .copied()
        .chain(std::iter::once(buf.len()));
    for end in ends {
        if start <= end && has_content(&buf[start..end]) {
            chunks.push(Chunk { start, end });
        }
        start = end + 1;
    }
    chunks
}

/// Whether text holds anything but whitespace and comments.
pub fn has_content(text: &str) -> bool {
    scan(text).trailing_text
}

/// Whether a buffer holds nothing to run: only whitespace, comments and `;`s (an unclosed block
/// comment or string is not blank: more lines belong to it).
pub fn is_blank(buf: &str) -> bool {
    !scan(buf).open && split_statements(buf).is_empty()
}

/// The words of a statement (outside comments), upper-cased, e.g. `["BEGIN", "STATEMENT", "SET"]`;
/// quoted parts count as one word `'`.
fn leading_words(text: &str, n: usize) -> Vec<String> {
    let without_comments = strip_comments(text);
    without_comments
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty())
        .take(n)
        .map(|w| w.to_ascii_uppercase())
        .collect()
}

/// The text with `--` and `/* */` comments replaced by spaces (strings are kept).
fn strip_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut quote: Option<u8> = None;
    let mut copy_from = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        match quote {
            Some(q) => {
                if b == q {
                    quote = None;
                }
                i += 1;
            }
            None if b == b'\'' || b == b'"' || b == b'`' => {
                quote = Some(b);
                i += 1;
            }
            None if (b == b'-' && next == Some(b'-')) || (b == b'/' && next == Some(b'*')) => {
                out.push_str(&text[copy_from..i]);
                let line = b == b'-';
                i += 2;
                while i < bytes.len() {
                    if line && bytes[i] == b'\n' {
                        break;
                    }
                    if !line && bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
                out.push(' ');
                copy_from = i.min(bytes.len());
            }
            None => i += 1,
        }
    }
    if copy_from < text.len() {
        out.push_str(&text[copy_from..]);
    }
    out
}

/// Whether the buffer is ready to run: it ends (ignoring whitespace and comments) with a `;`
/// that is outside strings and comments. A statement set (`BEGIN STATEMENT SET; ...; END;` or
/// `EXECUTE STATEMENT SET BEGIN ...; END;`) is complete only once its `END;` is typed.
pub fn is_complete(buf: &str) -> bool {
    let s = scan(buf);
    if s.open || s.trailing_text || s.terminators.is_empty() {
        return false;
    }
    let chunks = split_statements(buf);
    let mut in_set = false;
    for chunk in &chunks {
        let text = &buf[chunk.start..chunk.end];
        let words = leading_words(text, 4);
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        if w.starts_with(&["BEGIN", "STATEMENT", "SET"])
            || w.starts_with(&["EXECUTE", "STATEMENT", "SET", "BEGIN"])
        {
            in_set = true;
        }
        if in_set && w == ["END"] {
            in_set = false;
        }
    }
    !in_set
}

/// Whether a statement is the shell's `quit` or `exit` command.
pub fn is_exit_command(statement: &str) -> bool {
    let words = leading_words(statement, 2);
    words.len() == 1 && (words[0] == "QUIT" || words[0] == "EXIT")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_needs_a_real_semicolon() {
        assert!(!is_complete(""));
        assert!(!is_complete("SELECT 1"));
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT\n  1 AS x\n;"));
        assert!(is_complete("SELECT 1;  \n"));
        assert!(is_complete("SELECT 1; -- done"));
        assert!(is_complete("SELECT 1; /* done */"));
        assert!(!is_complete("SELECT 1; SELECT 2"));
        assert!(is_complete("SELECT 1; SELECT 2;"));
    }

    #[test]
    fn semicolons_in_strings_and_comments_do_not_count() {
        assert!(!is_complete("SELECT 'a;"));
        assert!(!is_complete("SELECT 'a;b'"));
        assert!(is_complete("SELECT 'a;b';"));
        assert!(!is_complete("SELECT 'it''s;'"));
        assert!(is_complete("SELECT 'it''s;';"));
        assert!(!is_complete("SELECT 1 -- end;"));
        assert!(is_complete("SELECT 1 -- end;\n;"));
        assert!(!is_complete("SELECT /* ; */ 1"));
        assert!(!is_complete("SELECT 1 /* ;"));
        assert!(!is_complete("SELECT `a;b` FROM t"));
        assert!(!is_complete("SELECT \"a;b\" FROM t"));
        assert!(is_complete("SELECT \"a;b\" FROM t;"));
    }

    #[test]
    fn statement_sets_wait_for_end() {
        assert!(!is_complete("BEGIN STATEMENT SET;"));
        assert!(!is_complete(
            "BEGIN STATEMENT SET;\nINSERT INTO t SELECT 1;"
        ));
        assert!(is_complete(
            "BEGIN STATEMENT SET;\nINSERT INTO t SELECT 1;\nEND;"
        ));
        assert!(!is_complete(
            "EXECUTE STATEMENT SET BEGIN INSERT INTO t SELECT 1;"
        ));
        assert!(is_complete(
            "execute statement set begin insert into t select 1; end;"
        ));
    }

    #[test]
    fn splitting() {
        let buf = "SELECT 1; -- c\n SELECT ';' ;\n;  ";
        let chunks = split_statements(buf);
        let texts: Vec<&str> = chunks.iter().map(|c| buf[c.start..c.end].trim()).collect();
        assert_eq!(texts, vec!["SELECT 1", "-- c\n SELECT ';'"]);
        assert!(split_statements("  -- only a comment\n").is_empty());
        let tail = split_statements("SELECT 1; SELECT 2");
        assert_eq!(tail.len(), 2);
    }

    #[test]
    fn blank_buffers() {
        assert!(is_blank(""));
        assert!(is_blank("  ;\n ; -- x"));
        assert!(is_blank("-- just a comment"));
        assert!(!is_blank("/* open comment"));
        assert!(!is_blank("SELECT"));
        assert!(!is_blank("'"));
    }

    #[test]
    fn exit_commands() {
        assert!(is_exit_command("quit"));
        assert!(is_exit_command("  EXIT "));
        assert!(is_exit_command("-- bye\nQuit"));
        assert!(!is_exit_command("quit now"));
        assert!(!is_exit_command("SELECT quit FROM t"));
        assert!(!is_exit_command("'quit'"));
    }
}
