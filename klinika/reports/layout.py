"""The report's page layout, in typst markup.

The document reads everything it shows from one JSON value passed in ``sys.inputs.report``:
user text is never pasted into markup, so a ``#`` or ``*`` in a finding is just a character.
Image paths in it are relative to the compile root (a private temporary folder).
"""

TYPST_LAYOUT = r"""
#let r = json(bytes(sys.inputs.report))
#let l = r.labels
#let lines(s) = s.split("\n").map(x => [#x]).join(linebreak())
#let paras(s) = {
  for p in s.split(regex("\n[ \t]*\n")) {
    if p.trim() != "" { par(lines(p.trim())) }
  }
}

#set document(title: r.title, author: r.clinic.name)
#set text(font: r.fonts, size: 10pt, lang: r.lang, fallback: true)
#set par(justify: true, leading: 0.6em, spacing: 0.9em)
#set page(
  paper: "a4",
  margin: (top: 2cm, bottom: 2.2cm, x: 2cm),
  header: context {
    if counter(page).get().first() > 1 {
      set text(8pt, fill: luma(90))
      [#r.clinic.name #h(1fr) #r.patient_line]
      v(-4pt)
      line(length: 100%, stroke: 0.3pt + luma(160))
    }
  },
  footer: context {
    set text(8pt, fill: luma(90))
    line(length: 100%, stroke: 0.3pt + luma(160))
    v(-4pt)
    r.footer
    if r.draft_mark != none [ · #r.draft_mark]
    h(1fr)
    [#l.page #counter(page).display("1 / 1", both: true)]
  },
)

#grid(
  columns: if r.clinic.logo != none { (auto, 1fr) } else { (1fr,) },
  gutter: 14pt,
  ..if r.clinic.logo != none { (image(r.clinic.logo, height: 1.7cm),) },
  [
    #text(15pt, weight: "bold", r.clinic.name)
    #if r.clinic.address != "" { linebreak(); text(9pt, fill: luma(60), lines(r.clinic.address)) }
  ],
)
#v(2pt)
#line(length: 100%, stroke: 0.8pt)

#grid(
  columns: (1fr, auto),
  align: (left + horizon, right + horizon),
  text(16pt, weight: "bold", r.title),
  stack(dir: ltr, spacing: 6pt,
    ..(r.draft_mark, r.amended_mark).filter(m => m != none).map(m =>
      box(fill: rgb("#fff1e0"), stroke: 0.6pt + rgb("#b35900"), inset: 5pt, radius: 2pt,
        text(weight: "bold", fill: rgb("#b35900"), m))
    )
  ),
)

#block(fill: luma(245), inset: 8pt, radius: 3pt, width: 100%)[
  #set text(9.5pt, hyphenate: false)
  #set par(justify: false)
  #table(
    columns: (auto, 1fr, auto, 1fr),
    stroke: none,
    inset: (x: 4pt, y: 2.5pt),
    ..r.header.map(row => (text(weight: "bold", fill: luma(70), row.at(0)), row.at(1))).flatten()
  )
]

#if r.amendment_reason != none [
  #text(weight: "bold", l.amendment_reason): #r.amendment_reason
]

#for section in r.sections {
  if section.text.trim() != "" {
    block(breakable: true, above: 1.1em)[
      #text(11.5pt, weight: "bold", section.label)
      #v(-2pt)
      #paras(section.text)
    ]
  }
}

#if r.images.len() > 0 {
  block(above: 1.2em, text(11.5pt, weight: "bold", l.key_images))
  grid(
    columns: (1fr, 1fr),
    gutter: 10pt,
    ..r.images.map(img => block(breakable: false, {
      image(img.file, width: 100%, height: 6.5cm, fit: "contain")
      if img.caption != "" { align(center, text(8.5pt, img.caption)) }
    })),
  )
}

#v(1.5em)
#block(breakable: false, width: 100%)[
  #line(length: 100%, stroke: 0.5pt)
  #if r.signature != none [
    #text(weight: "bold", l.signed_by): #r.signature.name \
    #text(weight: "bold", l.signed_at): #r.signature.when
  ] else [
    #text(style: "italic", l.not_signed)
  ]
]
"""
