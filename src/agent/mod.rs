//! One actor per team member: builds prompts, calls its model through `routing`, parses tool
//! calls and applies the turn checks (up to three attempts per turn).
