#!/usr/bin/env bash
# Vendor the Noto Serif SC TTFs (Regular 400 + Bold 700) used by the PDF renderer.
#
# Why npm: the only font source reachable from our build machines is a package
# registry; @expo-google-fonts/noto-serif-sc ships the upstream Google Fonts TTFs.
# Why TTF (never woff2): WeasyPrint subsets TTF directly, and a static TTF is what
# fontconfig loads without a decompression step.
#
# Usage: scripts/vendor_font.sh [--force]
#   Idempotent: if static/fonts/SHA256SUMS verifies, nothing is downloaded.
#   NOTO_SERIF_SC_VERSION overrides the pinned npm package version.
set -euo pipefail

PKG="@expo-google-fonts/noto-serif-sc"
VERSION="${NOTO_SERIF_SC_VERSION:-0.4.3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/static/fonts"
FORCE="${1:-}"

mkdir -p "$DEST"

if [[ "$FORCE" != "--force" && -f "$DEST/SHA256SUMS" ]] \
   && (cd "$DEST" && sha256sum --quiet -c SHA256SUMS >/dev/null 2>&1) \
   && [[ -f "$DEST/NotoSerifSC-Regular.ttf" && -f "$DEST/NotoSerifSC-Bold.ttf" ]]; then
  echo "vendor_font: static/fonts already verified, nothing to do (use --force to refetch)"
  exit 0
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "vendor_font: npm pack $PKG@$VERSION"
(cd "$TMP" && npm pack --silent "$PKG@$VERSION" >/dev/null)
TGZ="$(ls "$TMP"/*.tgz)"
tar -xzf "$TGZ" -C "$TMP"
PKGDIR="$TMP/package"

REG="$PKGDIR/400Regular/NotoSerifSC_400Regular.ttf"
BOLD="$PKGDIR/700Bold/NotoSerifSC_700Bold.ttf"
for f in "$REG" "$BOLD"; do
  [[ -f "$f" ]] || { echo "vendor_font: missing $f in package" >&2; exit 1; }
  # TrueType magic 00 01 00 00 (or 'true'); refuse anything else (woff/woff2/otf-cff).
  magic="$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')"
  [[ "$magic" == "00010000" || "$magic" == "74727565" ]] \
    || { echo "vendor_font: $f is not a TrueType font (magic $magic)" >&2; exit 1; }
done

install -m 0644 "$REG" "$DEST/NotoSerifSC-Regular.ttf"
install -m 0644 "$BOLD" "$DEST/NotoSerifSC-Bold.ttf"

LIC=""
for cand in LICENSE_FONT OFL.txt LICENSE_OFL.txt; do
  [[ -f "$PKGDIR/$cand" ]] && { LIC="$PKGDIR/$cand"; break; }
done
if [[ -n "$LIC" ]] && grep -q "SIL OPEN FONT LICENSE" "$LIC"; then
  {
    echo "Noto Serif SC (NotoSerifSC-Regular.ttf, NotoSerifSC-Bold.ttf)"
    echo "Font copyright (TTF name table): (c) 2017-2024 Adobe (http://www.adobe.com/)."
    echo "Vendored from npm $PKG@$VERSION (file $(basename "$LIC")); licence text follows verbatim."
    echo
    cat "$LIC"
  } > "$DEST/OFL.txt"
else
  cat > "$DEST/OFL.txt" <<'OFL'
Noto Serif SC, Copyright 2017 Adobe / Google.

This Font Software is licensed under the SIL Open Font License, Version 1.1.
This license is copied below, and is also available with a FAQ at:
https://openfontlicense.org

-----------------------------------------------------------
SIL OPEN FONT LICENSE Version 1.1 - 26 February 2007
-----------------------------------------------------------

PREAMBLE
The goals of the Open Font License (OFL) are to stimulate worldwide
development of collaborative font projects, to support the font creation
efforts of academic and linguistic communities, and to provide a free and
open framework in which fonts may be shared and improved in partnership
with others.

The OFL allows the licensed fonts to be used, studied, modified and
redistributed freely as long as they are not sold by themselves. The
fonts, including any derivative works, can be bundled, embedded,
redistributed and/or sold with any software provided that any reserved
names are not used by derivative works. The fonts and derivatives,
however, cannot be released under any other type of license. The
requirement for fonts to remain under this license does not apply
to any document created using the fonts or their derivatives.

DEFINITIONS
"Font Software" refers to the set of files released by the Copyright
Holder(s) under this license and clearly marked as such. This may
include source files, build scripts and documentation.

"Reserved Font Name" refers to any names specified as such after the
copyright statement(s).

"Original Version" refers to the collection of Font Software components as
distributed by the Copyright Holder(s).

"Modified Version" refers to any derivative made by adding to, deleting,
or substituting -- in part or in whole -- any of the components of the
Original Version, by changing formats or by porting the Font Software to a
new environment.

"Author" refers to any designer, engineer, programmer, technical
writer or other person who contributed to the Font Software.

PERMISSION & CONDITIONS
Permission is hereby granted, free of charge, to any person obtaining
a copy of the Font Software, to use, study, copy, merge, embed, modify,
redistribute, and sell modified and unmodified copies of the Font
Software, subject to the following conditions:

1) Neither the Font Software nor any of its individual components,
in Original or Modified Versions, may be sold by itself.

2) Original or Modified Versions of the Font Software may be bundled,
redistributed and/or sold with any software, provided that each copy
contains the above copyright notice and this license. These can be
included either as stand-alone text files, human-readable headers or
in the appropriate machine-readable metadata fields within text or
binary files as long as those fields can be easily viewed by the user.

3) No Modified Version of the Font Software may use the Reserved Font
Name(s) unless explicit written permission is granted by the corresponding
Copyright Holder. This restriction only applies to the primary font name as
presented to the users.

4) The name(s) of the Copyright Holder(s) and the Author(s) of the Font
Software shall not be used to promote, endorse or advertise any
Modified Version, except to acknowledge the contribution(s) of the
Copyright Holder(s) and the Author(s) or with their explicit written
permission.

5) The Font Software, modified or unmodified, in part or in whole,
must be distributed entirely under this license, and must not be
distributed under any other license. The requirement for fonts to
remain under this license does not apply to any document created
using the Font Software.

TERMINATION
This license becomes null and void if any of the above conditions are
not met.

DISCLAIMER
THE FONT SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND,
EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO ANY WARRANTIES OF
MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT
OF COPYRIGHT, PATENT, TRADEMARK, OR OTHER RIGHT. IN NO EVENT SHALL THE
COPYRIGHT HOLDER BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY,
INCLUDING ANY GENERAL, SPECIAL, INDIRECT, INCIDENTAL, OR CONSEQUENTIAL
DAMAGES, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING
FROM, OUT OF THE USE OF OR INABILITY TO USE THE FONT SOFTWARE OR FROM
OTHER DEALINGS IN THE FONT SOFTWARE.
OFL
fi

(cd "$DEST" && sha256sum NotoSerifSC-Regular.ttf NotoSerifSC-Bold.ttf OFL.txt > SHA256SUMS)
echo "vendor_font: wrote $(ls "$DEST" | tr '\n' ' ')"
cat "$DEST/SHA256SUMS"
