-- Stream readers live in Python (a scanner and its buffer each). The host keeps at most 1024
-- live ones.
-- Expected: terminated, "... not enough memory".
keep = {}
function process_message()
  for i = 1, 2000 do keep[#keep + 1] = create_stream_reader("r" .. i) end
  return 0
end
