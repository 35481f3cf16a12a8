//! The two table layouts Consul's CLI prints and scripts parse:
//!
//! - [`columnize`]: ryanuber/columnize's `SimpleFormat` (members, catalog nodes, raft peers):
//!   every column but the last left-aligned to its widest cell, joined by two spaces.
//! - [`tabwrite`]: Go's `text/tabwriter` as Consul configures it (`kv get -detailed`,
//!   `catalog services -tags`): tab-terminated cells padded to the column width plus a
//!   padding, column blocks formed by consecutive lines.
//!
//! Widths count characters (Unicode scalar values), as Go's `%-*s` and tabwriter do.

/// Lays out rows like columnize: cells trimmed, columns separated by two spaces, the last
/// cell of each row unpadded, no trailing newline. Trailing spaces (only possible when a row
/// ends in empty cells) are trimmed so every line ends in text.
pub(crate) fn columnize<R: AsRef<[String]>>(rows: &[R]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.as_ref().iter().enumerate() {
            let w = cell.trim().chars().count();
            match widths.get_mut(i) {
                Some(max) => *max = (*max).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut lines = Vec::with_capacity(rows.len());
    for row in rows {
        let cells = row.as_ref();
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let cell = cell.trim();
            line.push_str(cell);
            if i + 1 < cells.len() {
                pad(&mut line, widths[i] - cell.chars().count());
                line.push_str("  ");
            }
        }
        lines.push(line.trim_end().to_string());
    }
    lines.join("\n")
}

/// Go's `tabwriter.NewWriter(w, 0, 2, padding, ' ', 0)` applied to `text` and flushed.
/// Cells ending in `\t` form columns; the text after a line's last tab is not part of any
/// column. Output keeps Go's exact spacing, including padding after a cell that is followed
/// by an empty last cell.
pub(crate) fn tabwrite(text: &str, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format_block(&lines, &mut widths, 0, lines.len(), padding, &mut out);
    out
}

/// Go's `(*Writer).format`: find each block of consecutive lines that have a cell in the
/// current column, size the column, and recurse to the columns on its right.
fn format_block(
    lines: &[Vec<&str>],
    widths: &mut Vec<usize>,
    mut line0: usize,
    line1: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, widths, line0, this, out);
        line0 = this;
        let mut width = 0;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + padding);
            this += 1;
        }
        widths.push(width);
        format_block(lines, widths, line0, this, padding, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, widths, line0, line1, out);
}

fn write_lines(
    lines: &[Vec<&str>],
    widths: &[usize],
    line0: usize,
    line1: usize,
    out: &mut String,
) {
    for (i, line) in lines.iter().enumerate().take(line1).skip(line0) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if let Some(w) = widths.get(j) {
                pad(out, w.saturating_sub(cell.chars().count()));
            }
        }
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

fn pad(s: &mut String, n: usize) {
    s.extend(std::iter::repeat_n(' ', n));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(r: &[&[&str]]) -> Vec<Vec<String>> {
        r.iter()
            .map(|row| row.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn columnize_aligns_with_two_spaces_and_no_trailing_space() {
        let t = rows(&[
            &["Node", "Address", "Status"],
            &["server1", "192.168.1.153:8301", "alive"],
            &["s2", "10.0.0.2:8301", "failed"],
        ]);
        assert_eq!(
            columnize(&t),
            "Node     Address             Status\n\
             server1  192.168.1.153:8301  alive\n\
             s2       10.0.0.2:8301       failed"
        );
    }

    #[test]
    fn columnize_trims_cells_counts_chars_and_drops_trailing_blanks() {
        let t = rows(&[&["a", "b", "c"], &[" ç ", "", ""], &["long", "x"]]);
        assert_eq!(columnize(&t), "a     b  c\nç\nlong  x");
    }

    #[test]
    fn tabwrite_like_go_kv_detailed() {
        let text = "CreateIndex\t5\nFlags\t0\nKey\tfoo\nSession\t-\nValue\tbar";
        assert_eq!(
            tabwrite(text, 6),
            "CreateIndex      5\n\
             Flags            0\n\
             Key              foo\n\
             Session          -\n\
             Value            bar"
        );
    }

    #[test]
    fn tabwrite_pads_before_an_empty_last_cell_and_keeps_final_newline() {
        assert_eq!(
            tabwrite("consul\t\nweb\ta,b\n", 6),
            "consul      \nweb         a,b\n"
        );
    }

    #[test]
    fn tabwrite_blocks_are_broken_by_lines_without_the_column() {
        assert_eq!(
            tabwrite("a\tb\nplain\nlonger\tc", 1),
            "a b\nplain\nlonger c"
        );
    }
}
