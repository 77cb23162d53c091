package screen

import "regexp"

// A rule recognises one family of prompt-injection text. Rules run on the
// lower-cased NFKC view with hidden characters removed, on its leetspeak
// fold and ROT13 rotation, and on every decoded segment.
type rule struct {
	label  string
	weight float64 // how sure a match is, alone
	re     *regexp.Regexp
	// keys: every match of re contains one of them, starting at most
	// before bytes ahead of the key and ending at most after bytes past
	// its start. The regexp runs only on those windows: a long text costs
	// a few substring searches and short regexp runs, not ten full scans.
	keys          []string
	before, after int
}

// The labels, stable codes in answers and reason details.
const (
	LabelBoundary       = "FAKE_BOUNDARY"        // a fake end of input, role tag or new session
	LabelImpersonation  = "IMPERSONATION"        // text claiming to come from the system, an admin or the developers
	LabelToolRedefined  = "TOOL_REDEFINITION"    // redefining what a tool or function means (Freysa)
	LabelOverride       = "INSTRUCTION_OVERRIDE" // "ignore previous instructions", "pre-approved", "bypass the limit"
	LabelFormatCoercion = "FORMAT_COERCION"      // dictating the reader's output
	LabelAddressedToAI  = "ADDRESSED_TO_AI"      // instructions addressed to an AI inside a document
	LabelHidden         = "HIDDEN_CHARACTERS"    // zero-width or bidirectional controls
	LabelEncoded        = "ENCODED_PAYLOAD"      // a base64, hex or Morse run that decodes to instructions
	LabelOutputHijack   = "OUTPUT_MANIPULATION"  // instructions about the reader's own answer or code, planted in a document
	LabelShellPayload   = "SHELL_PAYLOAD"        // code that runs shell commands, fetches or deletes, planted in text
)

const (
	roles   = `(?:admin(?:istrator)?|developers?|dev team|creators?|owners?|operators?|system|root|security team|moderators?)`
	readers = `(?:ai|a\.i\.|assistants?|agents?|bots?|chatbots?|language models?|llms?|gpt|chatgpt|claude|models?)`
)

var rules = []rule{
	{LabelBoundary, 0.9, regexp.MustCompile(`<\|?\s*(?:im_start|im_end|endoftext|system|eot_id|start_header_id)\s*\|?>|</?\s*(?:system|instructions?|sys|assistant)\s*>|\[/?\s*(?:system|inst|sys|admin)\s*\]`), []string{"im_start", "im_end", "endoftext", "eot_id", "start_header_id", "sys", "inst", "assistant", "admin"}, 20, 40},
	{LabelBoundary, 0.8, regexp.MustCompile(`(?:end|beginning|start) of (?:the )?(?:user(?:'s)? |system |previous )?(?:input|prompt|instructions|conversation|context)\b|\b(?:new|fresh|another) (?:session|conversation|chat) (?:has )?(?:started|begins?|begun)|\bsession (?:has )?(?:ended|been reset|reset|restarted|expired)\b|#{2,}[ \t]*(?:system|admin|new instructions?)[ \t]*(?:\n|:|$)|-{3,}\s*(?:admin|system|developer) (?:mode|session|message)`), []string{"input", "prompt", "instruction", "conversation", "context", "session", "chat", "system", "admin", "developer"}, 50, 50},
	{LabelImpersonation, 0.8, regexp.MustCompile(`\b(?:i am|i'm|this is|speaking as|message from|sent by|on behalf of) (?:the |your |an? )?(?:[a-z]+'s )?` + roles + `\b`), []string{"i am", "i'm", "this is", "speaking as", "message from", "sent by", "on behalf of"}, 5, 70},
	{LabelImpersonation, 0.85, regexp.MustCompile(`\b` + roles + ` (?:override|command|instruction|notice|prompt)s?\s*:|\b(?:developer|debug|god|admin|maintenance|sudo|unrestricted) mode\b|\bsystem (?:prompt|message)\s*:|\bnew (?:system )?instructions?\s*:`), []string{"override", "command", "instruction", "notice", "prompt", "mode", "system"}, 30, 30},
	{LabelToolRedefined, 0.9, regexp.MustCompile(`\b(?:approve|reject|send|execute|transfer)[_ ]?(?:transfer|payment|funds|tx|transaction)?\b.{0,40}\b(?:is|should be|must be|are) (?:only |now |actually )?(?:used|called|invoked|meant|for)\b.{0,30}\b(?:incoming|receiv|deposit|inbound)`), []string{"incoming", "receiv", "deposit", "inbound"}, 150, 20},
	{LabelToolRedefined, 0.8, regexp.MustCompile(`\bre-?defin(?:e|es|ed|ing)\b.{0,40}\b(?:tool|function|command|approve|transfer)|\b(?:the (?:real|true|actual) (?:meaning|purpose) of|(?:actually|really|now) means)\b.{0,40}\b(?:tool|function|approve|transfer|payment)`), []string{"defin", "meaning", "purpose", "means"}, 20, 80},
	{LabelOverride, 0.9, regexp.MustCompile(`\b(?:ignore|disregard|forget|override|discard) (?:all |any |the |your |my )*(?:previous|prior|above|earlier|preceding|original|existing|system)? ?(?:instructions?|rules|directions|guidelines|prompts?|directives|constraints|guardrails|polic(?:y|ies)|(?:spending )?limits?)\b`), []string{"ignore", "disregard", "forget", "override", "discard"}, 5, 90},
	// "Pre-approved" alone is governance vocabulary ("a pre-approved
	// ARFC"); a claim that this very payment needs no approval is not.
	{LabelOverride, 0.85, regexp.MustCompile(`\b(?:this|the|your|my|these) (?:payment|transfer|transaction|withdrawal|request|action|grant|invoice|spend)s? (?:was|is|has been|have been|were|are) (?:already )?(?:pre-?approved|pre-?authori[sz]ed|approved|authori[sz]ed|signed off|verified)\b`), []string{"approved", "authoris", "authoriz", "signed off", "verified"}, 75, 12},
	{LabelOverride, 0.85, regexp.MustCompile(`\bno need (?:to wait )?(?:for|to (?:ask|wait) for) (?:approval|review|confirmation|a second signature)\b|\b(?:approval|confirmation|review) (?:is )?(?:not (?:required|needed)|already granted|waived)\b`), []string{"no need", "not required", "not needed", "already granted", "waived"}, 20, 55},
	{LabelOverride, 0.85, regexp.MustCompile(`\b(?:bypass|skip|circumvent|disable|turn off) (?:the |all |any )?(?:approval|policy|policies|limits?|guardrails?|safety|checks?|review|timelock|screening)\b`), []string{"bypass", "skip", "circumvent", "disable", "turn off"}, 2, 45},
	{LabelOverride, 0.85, regexp.MustCompile(`\b(?:do not|don't|never) (?:ask|wait) for (?:approval|confirmation|a human|humans|review)\b`), []string{"ask for", "wait for"}, 10, 35},
	{LabelFormatCoercion, 0.6, regexp.MustCompile(`\b(?:respond|reply|answer|output|return) (?:only|solely|exclusively|just) (?:with|in|using)\b|\b(?:your|the) (?:response|output|answer|reply) (?:must|should|has to) (?:only )?(?:be|contain|start with|begin with|include)\b|\b(?:print|output|repeat|write) (?:exactly|verbatim)\b`), []string{"respond", "reply", "answer", "output", "return", "response", "print", "repeat", "write"}, 15, 45},
	{LabelAddressedToAI, 0.75, regexp.MustCompile(`\b(?:dear|attention|hey|hello|hi|note to|to|calling all|instructions for) (?:the |any |all )?` + readers + `(?: ` + readers + `)?\b\s*[,:!]|\bif you are (?:an? |the )?` + readers + `\b|\b` + readers + ` (?:reading|processing|summari[sz]ing|analy[sz]ing|reviewing) this\b|\byou are (?:now )?(?:an? |the )?(?:unrestricted|jailbroken|unfiltered)\b|\byou (?:must|should|will) (?:now |immediately )?(?:send|transfer|approve|execute|call|sign|pay)\b`), []string{"a.i.", " ai", "assistant", "agent", "bot", "model", "llm", "gpt", "claude", "if you are", "unrestricted", "jailbroken", "unfiltered", "you must", "you should", "you will"}, 45, 45},
	// A document has no business telling its reader how to write its
	// answer or its code: the indirect-injection family (BIPIA's "include
	// in your response", "modify your answer", "add to your code").
	{LabelOutputHijack, 0.7, regexp.MustCompile(`\byour (?:response|answer|reply|output|message|code|codebase|implementation|solution|summary|completion)(?:'s)?s?\b`), []string{"your "}, 2, 40},
	{LabelShellPayload, 0.7, regexp.MustCompile(`\bos\.(?:system|popen|remove|unlink)\s*\(|\bsubprocess\.(?:run|call|popen|check_output|check_call)\b|\brm -rf\b|\b(?:curl|wget)\b[^\n]{0,120}\|\s*(?:ba|z)?sh\b|\bpowershell(?:\.exe)? -|\b(?:eval|exec)\s*\(\s*(?:base64|requests|urllib|compile)|/etc/(?:passwd|shadow)\b|\bshutil\.rmtree\b`), []string{"os.", "subprocess.", "rm -rf", "curl", "wget", "powershell", "eval", "exec", "/etc/", "shutil."}, 10, 130},
}
