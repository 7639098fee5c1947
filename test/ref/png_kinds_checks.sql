-- header facts
SELECT kind, (cxr.cxr_image_info(img)).* FROM png_cases ORDER BY kind;
-- decoded values against the encoder's own samples
SELECT kind,
       (SELECT max(abs(a - b)) FROM unnest(cxr.cxr_image_gray(img, w), expected) AS t(a, b)) < 2e-4
           AS decodes_exactly
FROM png_cases WHERE w = h ORDER BY kind;
-- non-square and one-pixel images resize without trouble (values stay within the input's range)
SELECT kind, array_dims(g) AS dims,
       (SELECT min(v) >= (SELECT min(e) FROM unnest(expected) e) - 1e-6
           AND max(v) <= (SELECT max(e) FROM unnest(expected) e) + 1e-6 FROM unnest(g) v) AS in_range
FROM png_cases, cxr.cxr_image_gray(img, 17) g WHERE w <> h OR w = 1 ORDER BY kind;
-- the domain accepts PNG signatures only
SELECT img::cxr.cxr_image IS NOT NULL AS accepted FROM png_cases WHERE kind = 'gray8';
SELECT '\x474946'::bytea::cxr.cxr_image;
-- every broken file is an ERROR with a SQLSTATE, never a crash
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT kind, img FROM png_broken ORDER BY kind LOOP
        BEGIN
            PERFORM cxr.cxr_image_gray(r.img, 8);
            RAISE NOTICE '% decoded?!', r.kind;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE '%: % (%)', r.kind, SQLERRM, SQLSTATE;
        END;
    END LOOP;
END $$;
-- the pixel limit is checked before decoding
SET cxr_attn.max_image_pixels = 100;
SELECT cxr.cxr_image_gray(img, 8) FROM png_cases WHERE kind = 'gray8';
RESET cxr_attn.max_image_pixels;
SELECT cxr.cxr_image_info(img) FROM png_broken WHERE kind = 'huge';
SELECT cxr.cxr_image_gray(img, 0) FROM png_cases WHERE kind = 'gray8';
