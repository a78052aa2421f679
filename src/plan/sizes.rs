//! Sizes and interpolations as the spec writes them, checked and turned into the augment types
//! (shared by `preprocess` and `augment`).

use super::check::Checker;
use crate::augment::{Interpolation, ResizeTo};
use crate::spec::schema::{self, Size};

pub(super) fn interpolation(value: schema::Interpolation) -> Interpolation {
    match value {
        schema::Interpolation::Nearest => Interpolation::Nearest,
        schema::Interpolation::Bilinear => Interpolation::Bilinear,
        schema::Interpolation::Bicubic => Interpolation::Bicubic,
    }
}

/// A size as a resize target (one number = shorter edge).
pub(super) fn resize_to(check: &mut Checker, key: &str, size: Size) -> ResizeTo {
    match size {
        Size::Edge(edge) => {
            check.positive(key, edge as usize);
            ResizeTo::ShorterEdge(edge)
        }
        Size::Exact([height, width]) => {
            if height == 0 || width == 0 {
                check.fail(key, Some(format!("[{height}, {width}]")), "sizes must be at least 1");
            }
            ResizeTo::Exact { height, width }
        }
    }
}

/// A size as a crop (one number = square).
pub(super) fn crop_size(check: &mut Checker, key: &str, size: Size) -> (u32, u32) {
    let (height, width) = match size {
        Size::Edge(edge) => (edge, edge),
        Size::Exact([height, width]) => (height, width),
    };
    if height == 0 || width == 0 {
        check.fail(key, Some(format!("[{height}, {width}]")), "sizes must be at least 1");
    }
    (height, width)
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::check::testing::{REQUIRED, resolve};

    #[test]
    fn one_number_is_an_edge_or_a_square_and_zero_is_named() {
        let text = format!("{REQUIRED}[model]\narch = \"cvt-tiny\"\n");
        let (sizes, issues) = resolve(&text, |check| {
            (
                resize_to(check, "a", Size::Edge(40)),
                resize_to(check, "b", Size::Exact([30, 20])),
                crop_size(check, "c", Size::Edge(5)),
                crop_size(check, "d", Size::Exact([0, 4])),
                resize_to(check, "e", Size::Edge(0)),
            )
        });
        assert_eq!(sizes.0, ResizeTo::ShorterEdge(40));
        assert_eq!(sizes.1, ResizeTo::Exact { height: 30, width: 20 });
        assert_eq!(sizes.2, (5, 5));
        assert_eq!(issues, ["d", "e"]);
        assert_eq!(interpolation(schema::Interpolation::Bicubic), Interpolation::Bicubic);
    }
}
