-- Extra return values (a third one was taken as the error prefix by the host's status check).
-- Expected: every call returns (0, nil).
function process_message() return 0, nil, "evil", {} end
