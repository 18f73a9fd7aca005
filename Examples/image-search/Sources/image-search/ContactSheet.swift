import IJEPA

/// The query and its neighbours side by side, each scaled to a 112-pixel tile with its file name (the last
/// path components, upper-cased in a 3x5 pixel font drawn at 2x) under it; the query's tile has a red frame.
func contactSheet(query: Image, queryName: String, neighbours: [(Image, String)]) throws -> Image {
    let tile = 112, label = 28, pad = 6
    let items = [(query, queryName)] + neighbours
    let width = items.count * (tile + pad) + pad, height = tile + label + 2 * pad
    var px = [UInt8](repeating: 255, count: width * height * 3)
    for (n, (image, name)) in items.enumerated() {
        let (w, h, src) = try image.pixels(channels: 3)
        let x0 = pad + n * (tile + pad), y0 = pad
        for y in 0..<tile {  // nearest-neighbour scaling: the tiles show the pixels as they are
            for x in 0..<tile {
                let sy = y * h / tile, sx = x * w / tile
                for c in 0..<3 { px[((y0 + y) * width + x0 + x) * 3 + c] = src[(sy * w + sx) * 3 + c] }
            }
        }
        if n == 0 {
            for i in -2..<(tile + 2) {
                for (x, y) in [(x0 + i, y0 - 2), (x0 + i, y0 + tile + 1), (x0 - 2, y0 + i), (x0 + tile + 1, y0 + i)]
                where x >= 0 && y >= 0 && x < width && y < height {
                    px[(y * width + x) * 3] = 220; px[(y * width + x) * 3 + 1] = 30; px[(y * width + x) * 3 + 2] = 30
                }
            }
        }
        let parts = name.split(separator: "/").suffix(2).joined(separator: "/")
        let lines = [String(parts.prefix(14)), String(parts.dropFirst(14).prefix(14))].filter { !$0.isEmpty }
        for (l, text) in lines.enumerated() {
            draw(text, x: x0, y: y0 + tile + 4 + l * 12, into: &px, width: width)
        }
    }
    return try Image(width: width, height: height, channels: 3, pixels: px, name: "contact sheet")
}

/// Draws `text` in the 3x5 font at scale 2 (8 pixels a character), black on the sheet.
func draw(_ text: String, x: Int, y: Int, into px: inout [UInt8], width: Int) {
    for (i, ch) in text.uppercased().enumerated() {
        let rows = font[ch] ?? font["?"]!
        for (r, row) in rows.enumerated() {
            for (c, bit) in row.enumerated() where bit == "#" {
                for dy in 0..<2 {
                    for dx in 0..<2 {
                        let xx = x + i * 8 + c * 2 + dx, yy = y + r * 2 + dy
                        guard xx < width, (yy * width + xx) * 3 + 2 < px.count else { continue }
                        for k in 0..<3 { px[(yy * width + xx) * 3 + k] = 0 }
                    }
                }
            }
        }
    }
}

/// A 3 x 5 pixel font: digits, capitals and the characters of file paths.
let font: [Character: [String]] = [
    "A": [".#.", "#.#", "###", "#.#", "#.#"], "B": ["##.", "#.#", "##.", "#.#", "##."],
    "C": [".##", "#..", "#..", "#..", ".##"], "D": ["##.", "#.#", "#.#", "#.#", "##."],
    "E": ["###", "#..", "##.", "#..", "###"], "F": ["###", "#..", "##.", "#..", "#.."],
    "G": [".##", "#..", "#.#", "#.#", ".##"], "H": ["#.#", "#.#", "###", "#.#", "#.#"],
    "I": ["###", ".#.", ".#.", ".#.", "###"], "J": ["..#", "..#", "..#", "#.#", ".#."],
    "K": ["#.#", "#.#", "##.", "#.#", "#.#"], "L": ["#..", "#..", "#..", "#..", "###"],
    "M": ["#.#", "###", "###", "#.#", "#.#"], "N": ["##.", "#.#", "#.#", "#.#", "#.#"],
    "O": [".#.", "#.#", "#.#", "#.#", ".#."], "P": ["##.", "#.#", "##.", "#..", "#.."],
    "Q": [".#.", "#.#", "#.#", "##.", ".##"], "R": ["##.", "#.#", "##.", "#.#", "#.#"],
    "S": [".##", "#..", ".#.", "..#", "##."], "T": ["###", ".#.", ".#.", ".#.", ".#."],
    "U": ["#.#", "#.#", "#.#", "#.#", "###"], "V": ["#.#", "#.#", "#.#", "#.#", ".#."],
    "W": ["#.#", "#.#", "###", "###", "#.#"], "X": ["#.#", "#.#", ".#.", "#.#", "#.#"],
    "Y": ["#.#", "#.#", ".#.", ".#.", ".#."], "Z": ["###", "..#", ".#.", "#..", "###"],
    "0": ["###", "#.#", "#.#", "#.#", "###"], "1": [".#.", "##.", ".#.", ".#.", "###"],
    "2": ["##.", "..#", ".#.", "#..", "###"], "3": ["##.", "..#", ".#.", "..#", "##."],
    "4": ["#.#", "#.#", "###", "..#", "..#"], "5": ["###", "#..", "##.", "..#", "##."],
    "6": [".##", "#..", "###", "#.#", "###"], "7": ["###", "..#", ".#.", ".#.", ".#."],
    "8": ["###", "#.#", "###", "#.#", "###"], "9": ["###", "#.#", "###", "..#", "##."],
    "-": ["...", "...", "###", "...", "..."], "_": ["...", "...", "...", "...", "###"],
    ".": ["...", "...", "...", "...", ".#."], "/": ["..#", "..#", ".#.", "#..", "#.."],
    " ": ["...", "...", "...", "...", "..."], "?": ["##.", "..#", ".#.", "...", ".#."],
]
